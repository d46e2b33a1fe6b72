// The fused feature cross, in item-parallel steps whose results equal the CPU kernels'
// (recis.core.kernels.feature_cross): per row, distinct ids in order of first occurrence with
// their weights summed in order of occurrence; then the row's pairs in left-major order, hashed
// with MurmurHash64A over the 16 bytes of (left, right) and weighted w_left * w_right.
//
// The 2F sides of F crossed pairs (sides 0..F-1 on the left, F..2F-1 on the right) are laid out
// in one flat element space and one flat row space. A row's distinct ids are written at the
// row's own position in a flat id buffer (a row never has more distinct ids than ids), so no
// compaction is needed before pairing.
#pragma once

#include "feature_support.cuh"
#include "string_hash.cuh"

namespace recis::features {

struct CrossSides {
  i64 count;               // 2F sides
  const i64* item_starts;  // [2F + 1] first flat element of each side
  const i64* row_starts;   // [2F + 1] first flat row of each side
  const u64* values;       // [2F] int64 ids
  const u64* offsets;      // [2F] int64 row offsets (rows + 1 each)
  const u64* weights;      // [2F] float32 weights, 0 where a side has none (each id weighs 1)
};

// Where flat element e lies: its side, index in the side, row, and the row's [begin, end).
struct ElementPlace {
  i64 side, local, row, row_begin, row_end;
};

RECIS_FN ElementPlace place_element(const CrossSides& sides, i64 e) {
  ElementPlace p;
  p.side = last_at_most(sides.item_starts, sides.count, e);
  p.local = e - sides.item_starts[p.side];
  const i64* offsets = table_entry<const i64>(sides.offsets, p.side);
  const i64 rows = sides.row_starts[p.side + 1] - sides.row_starts[p.side];
  p.row = last_at_most(offsets, rows, p.local);
  p.row_begin = offsets[p.row];
  p.row_end = offsets[p.row + 1];
  return p;
}

// first[e] = 1 when element e's id does not occur earlier in its row.
RECIS_FN void cross_mark_first(const CrossSides& sides, i64 e, unsigned char* first) {
  const ElementPlace p = place_element(sides, e);
  const i64* ids = table_entry<const i64>(sides.values, p.side);
  const i64 id = ids[p.local];
  unsigned char is_first = 1;
  for (i64 j = p.row_begin; j < p.local; ++j) {
    if (ids[j] == id) {
      is_first = 0;
      break;
    }
  }
  first[e] = is_first;
}

// A first occurrence writes its id and summed weight at the row's position plus its rank among
// the row's first occurrences; the row's last element writes the row's distinct count.
RECIS_FN void cross_unique(const CrossSides& sides, i64 e, const unsigned char* first,
                           i64* unique_ids, float* unique_weights, i64* counts) {
  const ElementPlace p = place_element(sides, e);
  const i64 side_start = sides.item_starts[p.side];
  const i64 row_first = side_start + p.row_begin;
  if (first[e]) {
    i64 rank = 0;
    for (i64 j = row_first; j < e; ++j) rank += first[j];
    const i64* ids = table_entry<const i64>(sides.values, p.side);
    const float* weights = table_entry<const float>(sides.weights, p.side);
    const i64 id = ids[p.local];
    float sum = 0.0f;
    for (i64 j = p.local; j < p.row_end; ++j) {
      if (ids[j] == id) sum += weights ? weights[j] : 1.0f;
    }
    unique_ids[row_first + rank] = id;
    unique_weights[row_first + rank] = sum;
  }
  if (p.local == p.row_end - 1) {
    i64 count = 0;
    for (i64 j = row_first; j < side_start + p.row_end; ++j) count += first[j];
    counts[sides.row_starts[p.side] + p.row] = count;
  }
}

// pairs[k] for left flat row k: its distinct count times its right row's.
RECIS_FN void cross_pair_count(const CrossSides& sides, i64 k, const i64* counts, i64* pairs) {
  const i64 features = sides.count / 2;
  const i64 f = last_at_most(sides.row_starts, features, k);
  const i64 row = k - sides.row_starts[f];
  pairs[k] = counts[k] * counts[sides.row_starts[features + f] + row];
}

// Pair t of all rows' pairs: pair_starts[k] is the first pair of left flat row k (left_rows + 1
// entries). Writes the pair's hash and weight at t.
RECIS_FN void cross_pair(const CrossSides& sides, i64 t, const i64* pair_starts, i64 left_rows,
                         const i64* counts, const i64* unique_ids, const float* unique_weights,
                         u64* hashes, float* pair_weights) {
  const i64 k = last_at_most(pair_starts, left_rows, t);
  const i64 features = sides.count / 2;
  const i64 f = last_at_most(sides.row_starts, features, k);
  const i64 right = features + f;
  const i64 row = k - sides.row_starts[f];
  const i64 right_count = counts[sides.row_starts[right] + row];
  const i64 pair = t - pair_starts[k];
  const i64 i = pair / right_count;
  const i64 j = pair - i * right_count;
  const i64 left_item = sides.item_starts[f] + table_entry<const i64>(sides.offsets, f)[row] + i;
  const i64 right_item =
      sides.item_starts[right] + table_entry<const i64>(sides.offsets, right)[row] + j;
  hashes[t] = recis::hashing::murmur_pair((u64)unique_ids[left_item], (u64)unique_ids[right_item]);
  pair_weights[t] = unique_weights[left_item] * unique_weights[right_item];
}

}  // namespace recis::features

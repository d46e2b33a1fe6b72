// Fused sequence truncation, in item-parallel steps whose results equal the CPU kernels
// (recis.core.kernels.feature_truncate).
//
// 2-D (one offset level): every row keeps its first or last seq_len values. 3-D (two levels):
// every sequence keeps its first or last seq_len inner rows, whole, and is padded with empty rows
// to exactly seq_len "slots". Steps: per row (2-D) or slot (3-D), the kept size and the drop and
// pad counts; a running total of the sizes (a scan, outside these kernels); then per input value,
// its destination if kept. The F columns are laid out in one flat value space, one flat row
// space and (3-D) one flat slot space; column f's output values start at its first flat value.
#pragma once

#include "feature_support.cuh"

namespace recis::features {

struct TruncateColumns {
  i64 count;               // F columns
  const i64* item_starts;  // [F + 1] first flat value of each column
  const i64* row_starts;   // [F + 1] first flat row (2-D) or sequence (3-D) of each column
  const u64* values;       // [F] value bits
  const u64* offsets;      // [F] int64 row offsets (2-D) or sequence offsets (3-D)
  const u64* weights;      // [F] float32 weights, 0 where a column has none
  const i64* seq_lens;     // [F]
  const i64* keep_last;    // [F] 1 keeps the last seq_len entries (truncation on the left)
};

// Entries kept of a row or sequence of `length` entries, and how many are skipped before them.
struct Kept {
  i64 count, skip;
};

RECIS_FN Kept kept_entries(i64 length, i64 seq_len, i64 keep_last) {
  Kept kept;
  kept.count = smaller(length, seq_len);
  kept.skip = keep_last ? length - kept.count : 0;
  return kept;
}

// 2-D, flat row k: kept[k], drops[k], pads[k].
RECIS_FN void truncate_row_sizes(const TruncateColumns& c, i64 k, i64* kept, i64* drops,
                                 i64* pads) {
  const i64 f = last_at_most(c.row_starts, c.count, k);
  const i64* offsets = table_entry<const i64>(c.offsets, f);
  const i64 row = k - c.row_starts[f];
  const i64 length = offsets[row + 1] - offsets[row];
  const i64 keep = smaller(length, c.seq_lens[f]);
  kept[k] = keep;
  drops[k] = length - keep;
  pads[k] = c.seq_lens[f] - keep;
}

// 2-D, flat value e: copied (with its weight) when kept. kept_starts[k] is the running total of
// the kept sizes of the flat rows before k.
template <typename T>
RECIS_FN void truncate_row_value(const TruncateColumns& c, i64 e, const i64* kept_starts,
                                 T* out_values, float* out_weights) {
  const i64 f = last_at_most(c.item_starts, c.count, e);
  const i64 local = e - c.item_starts[f];
  const i64* offsets = table_entry<const i64>(c.offsets, f);
  const i64 rows = c.row_starts[f + 1] - c.row_starts[f];
  const i64 row = last_at_most(offsets, rows, local);
  const Kept kept = kept_entries(offsets[row + 1] - offsets[row], c.seq_lens[f], c.keep_last[f]);
  const i64 position = local - offsets[row] - kept.skip;
  if (position < 0 || position >= kept.count) return;
  const i64 first_row = c.row_starts[f];
  const i64 target = c.item_starts[f] + kept_starts[first_row + row] - kept_starts[first_row] +
                     position;
  out_values[target] = table_entry<const T>(c.values, f)[local];
  const float* weights = table_entry<const float>(c.weights, f);
  if (weights) out_weights[target] = weights[local];
}

// The inner level of 3-D columns.
struct InnerRows {
  const u64* offsets;      // [F] int64 inner row offsets
  const i64* counts;       // [F] inner rows of each column
  const i64* slot_starts;  // [F + 1] first flat slot of each column (sequences * seq_len)
};

// 3-D, flat slot m (sequence m / seq_len, position m % seq_len of its column): sizes[m], the
// values of the inner row kept there (0 for padding); the slot at position 0 also writes its
// sequence's drop and pad counts.
RECIS_FN void truncate_slot_sizes(const TruncateColumns& c, const InnerRows& inner, i64 m,
                                  i64* sizes, i64* drops, i64* pads) {
  const i64 f = last_at_most(inner.slot_starts, c.count, m);
  const i64 seq_len = c.seq_lens[f];
  const i64 local = m - inner.slot_starts[f];
  const i64 sequence = local / seq_len;
  const i64 position = local - sequence * seq_len;
  const i64* outer = table_entry<const i64>(c.offsets, f);
  const i64 length = outer[sequence + 1] - outer[sequence];
  const Kept kept = kept_entries(length, seq_len, c.keep_last[f]);
  const i64* rows = table_entry<const i64>(inner.offsets, f);
  const i64 row = outer[sequence] + kept.skip + position;
  sizes[m] = position < kept.count ? rows[row + 1] - rows[row] : 0;
  if (position == 0) {
    drops[c.row_starts[f] + sequence] = length - kept.count;
    pads[c.row_starts[f] + sequence] = seq_len - kept.count;
  }
}

// 3-D, flat value e: copied (with its weight) when its inner row is kept. slot_totals[m] is the
// running total of the sizes of the flat slots before m.
template <typename T>
RECIS_FN void truncate_sequence_value(const TruncateColumns& c, const InnerRows& inner, i64 e,
                                      const i64* slot_totals, T* out_values, float* out_weights) {
  const i64 f = last_at_most(c.item_starts, c.count, e);
  const i64 local = e - c.item_starts[f];
  const i64* rows = table_entry<const i64>(inner.offsets, f);
  const i64 row = last_at_most(rows, inner.counts[f], local);
  const i64* outer = table_entry<const i64>(c.offsets, f);
  const i64 sequences = c.row_starts[f + 1] - c.row_starts[f];
  const i64 sequence = last_at_most(outer, sequences, row);
  const i64 seq_len = c.seq_lens[f];
  const Kept kept = kept_entries(outer[sequence + 1] - outer[sequence], seq_len, c.keep_last[f]);
  const i64 position = row - outer[sequence] - kept.skip;
  if (position < 0 || position >= kept.count) return;
  const i64 first_slot = inner.slot_starts[f];
  const i64 slot = first_slot + sequence * seq_len + position;
  const i64 target =
      c.item_starts[f] + slot_totals[slot] - slot_totals[first_slot] + (local - rows[row]);
  out_values[target] = table_entry<const T>(c.values, f)[local];
  const float* weights = table_entry<const float>(c.weights, f);
  if (weights) out_weights[target] = weights[local];
}

}  // namespace recis::features

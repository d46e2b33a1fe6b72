// Fused feature-op kernels: one launch applies one kind of op to every feature of a group.
//
// Features are passed as tables of device addresses (one uint64 per feature) plus int64 arrays of
// per-feature parameters; a flat item index (over the values, rows or strings of all features) is
// mapped to its feature by a binary search of the features' first items (`starts`, F + 1
// entries). Every kernel is a grid-stride loop over `n` items calling the device functions of the
// feature_*.cuh headers; results are bit-identical to the CPU kernels in recis.core.kernels.
// The Python side is recis/core/cuda/features.py.

#include "feature_cross.cuh"
#include "feature_ops.cuh"
#include "feature_support.cuh"
#include "feature_truncate.cuh"
#include "string_hash.cuh"

using recis::features::CrossSides;
using recis::features::i64;
using recis::features::InnerRows;
using recis::features::last_at_most;
using recis::features::table_entry;
using recis::features::TruncateColumns;
using recis::features::u64;

// ---------------------------------------------------------------------------------------------
// Value-wise ops. starts: [F + 1] first flat value of each feature; values, out: address tables.

// out[f][k] = values[f][k] % divisors[f] (uint64), with magics/shifts from modulo_magic.
RECIS_KERNEL recis_fused_mod(i64 n, const i64* starts, i64 features, const u64* values,
                             const u64* out, const u64* divisors, const u64* magics,
                             const u64* shifts) {
  RECIS_FOR_EACH_ITEM(i, n) {
    const i64 f = last_at_most(starts, features, i);
    const i64 k = i - starts[f];
    const u64 value = table_entry<const u64>(values, f)[k];
    table_entry<u64>(out, f)[k] =
        recis::features::unsigned_mod(value, divisors[f], magics[f], shifts[f]);
  }
}

// out[f][k] (int64) = upper-bound position of values[f][k] among feature f's float64 edges,
// edges[edge_starts[f], edge_starts[f + 1]).
template <typename V>
RECIS_FN void bucketize_value(i64 i, const i64* starts, i64 features, const u64* values,
                              const u64* out, const double* edges, const i64* edge_starts) {
  const i64 f = last_at_most(starts, features, i);
  const i64 k = i - starts[f];
  const V value = table_entry<const V>(values, f)[k];
  const i64 first = edge_starts[f];
  table_entry<i64>(out, f)[k] =
      recis::features::upper_bound_position(value, edges + first, edge_starts[f + 1] - first);
}

#define RECIS_BUCKETIZE_KERNEL(name, V)                                                          \
  RECIS_KERNEL name(i64 n, const i64* starts, i64 features, const u64* values, const u64* out, \
                    const double* edges, const i64* edge_starts) {                             \
    RECIS_FOR_EACH_ITEM(i, n) {                                                                \
      bucketize_value<V>(i, starts, features, values, out, edges, edge_starts);                \
    }                                                                                          \
  }

RECIS_BUCKETIZE_KERNEL(recis_fused_bucketize_float32, float)
RECIS_BUCKETIZE_KERNEL(recis_fused_bucketize_float64, double)
RECIS_BUCKETIZE_KERNEL(recis_fused_bucketize_int64, long long)

// out[f] is int64 [hash_counts[f], size_f]: row h holds multi_hash(values[f][k], parameters
// [f * width + h]) for every k.
RECIS_KERNEL recis_fused_multi_hash(i64 n, const i64* starts, i64 features, const u64* values,
                                    const u64* out, const i64* hash_counts, i64 width,
                                    const i64* multipliers, const i64* primes,
                                    const i64* buckets) {
  RECIS_FOR_EACH_ITEM(i, n) {
    const i64 f = last_at_most(starts, features, i);
    const i64 k = i - starts[f];
    const i64 size = starts[f + 1] - starts[f];
    const i64 id = table_entry<const i64>(values, f)[k];
    i64* result = table_entry<i64>(out, f);
    for (i64 h = 0; h < hash_counts[f]; ++h) {
      const i64 p = f * width + h;
      result[h * size + k] = recis::features::multi_hash(id, multipliers[p], primes[p], buckets[p]);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// String hashes. starts: [F + 1] first flat string of each feature; data: byte buffers; offsets:
// int64 string offsets into them; out: uint64 hashes, one per string.

#define RECIS_STRING_HASH_KERNEL(name, hash)                                                    \
  RECIS_KERNEL name(i64 n, const i64* starts, i64 features, const u64* data, const u64* offsets, \
                    const u64* out) {                                                          \
    RECIS_FOR_EACH_ITEM(i, n) {                                                                \
      const i64 f = last_at_most(starts, features, i);                                         \
      const i64 k = i - starts[f];                                                             \
      const i64* bounds = table_entry<const i64>(offsets, f);                                  \
      const unsigned char* bytes = table_entry<const unsigned char>(data, f) + bounds[k];      \
      table_entry<u64>(out, f)[k] = hash(bytes, (u64)(bounds[k + 1] - bounds[k]));             \
    }                                                                                          \
  }

RECIS_STRING_HASH_KERNEL(recis_fused_farm_fingerprint64, recis::hashing::farm_fingerprint64)
RECIS_STRING_HASH_KERNEL(recis_fused_murmur_hash64a, recis::hashing::murmur_hash64a)

// ---------------------------------------------------------------------------------------------
// Feature cross (see feature_cross.cuh). Side arguments: sides (2F), item_starts and row_starts
// ([2F + 1] each), values, offsets and weights address tables.

RECIS_KERNEL recis_cross_mark_first(i64 n, i64 sides, const i64* item_starts, const i64* row_starts,
                                    const u64* values, const u64* offsets, const u64* weights,
                                    unsigned char* first) {
  const CrossSides s{sides, item_starts, row_starts, values, offsets, weights};
  RECIS_FOR_EACH_ITEM(e, n) { recis::features::cross_mark_first(s, e, first); }
}

RECIS_KERNEL recis_cross_unique(i64 n, i64 sides, const i64* item_starts, const i64* row_starts,
                                const u64* values, const u64* offsets, const u64* weights,
                                const unsigned char* first, i64* unique_ids, float* unique_weights,
                                i64* counts) {
  const CrossSides s{sides, item_starts, row_starts, values, offsets, weights};
  RECIS_FOR_EACH_ITEM(e, n) {
    recis::features::cross_unique(s, e, first, unique_ids, unique_weights, counts);
  }
}

RECIS_KERNEL recis_cross_pair_counts(i64 n, i64 sides, const i64* item_starts,
                                     const i64* row_starts, const u64* values, const u64* offsets,
                                     const u64* weights, const i64* counts, i64* pairs) {
  const CrossSides s{sides, item_starts, row_starts, values, offsets, weights};
  RECIS_FOR_EACH_ITEM(k, n) { recis::features::cross_pair_count(s, k, counts, pairs); }
}

RECIS_KERNEL recis_cross_pairs(i64 n, i64 sides, const i64* item_starts, const i64* row_starts,
                               const u64* values, const u64* offsets, const u64* weights,
                               const i64* pair_starts, const i64* counts, const i64* unique_ids,
                               const float* unique_weights, u64* hashes, float* pair_weights) {
  const CrossSides s{sides, item_starts, row_starts, values, offsets, weights};
  const i64 left_rows = row_starts[sides / 2];
  RECIS_FOR_EACH_ITEM(t, n) {
    recis::features::cross_pair(s, t, pair_starts, left_rows, counts, unique_ids, unique_weights,
                                hashes, pair_weights);
  }
}

// Per-segment offsets from running totals (see segment_offsets); n = starts[segments] + segments.
RECIS_KERNEL recis_segment_offsets(i64 n, const i64* starts, const i64* shifted, i64 segments,
                                   const i64* totals, i64* out) {
  RECIS_FOR_EACH_ITEM(m, n) {
    recis::features::segment_offsets(m, starts, shifted, segments, totals, out);
  }
}

// ---------------------------------------------------------------------------------------------
// Sequence truncation (see feature_truncate.cuh). Column arguments: columns (F), item_starts and
// row_starts ([F + 1] each), values, offsets and weights address tables, seq_lens, keep_last.
// 3-D inner arguments: inner offsets address table, inner row counts, slot_starts ([F + 1]).

RECIS_KERNEL recis_truncate_row_sizes(i64 n, i64 columns, const i64* item_starts,
                                      const i64* row_starts, const u64* values, const u64* offsets,
                                      const u64* weights, const i64* seq_lens,
                                      const i64* keep_last, i64* kept, i64* drops, i64* pads) {
  const TruncateColumns c{columns, item_starts, row_starts, values,
                          offsets, weights,     seq_lens,   keep_last};
  RECIS_FOR_EACH_ITEM(k, n) { recis::features::truncate_row_sizes(c, k, kept, drops, pads); }
}

#define RECIS_TRUNCATE_ROW_VALUES_KERNEL(name, T)                                                 \
  RECIS_KERNEL name(i64 n, i64 columns, const i64* item_starts, const i64* row_starts,            \
                    const u64* values, const u64* offsets, const u64* weights,                    \
                    const i64* seq_lens, const i64* keep_last, const i64* kept_starts,            \
                    T* out_values, float* out_weights) {                                          \
    const TruncateColumns c{columns, item_starts, row_starts, values,                             \
                            offsets, weights,     seq_lens,   keep_last};                         \
    RECIS_FOR_EACH_ITEM(e, n) {                                                                   \
      recis::features::truncate_row_value<T>(c, e, kept_starts, out_values, out_weights);         \
    }                                                                                             \
  }

RECIS_TRUNCATE_ROW_VALUES_KERNEL(recis_truncate_row_values_1, unsigned char)
RECIS_TRUNCATE_ROW_VALUES_KERNEL(recis_truncate_row_values_2, unsigned short)
RECIS_TRUNCATE_ROW_VALUES_KERNEL(recis_truncate_row_values_4, unsigned int)
RECIS_TRUNCATE_ROW_VALUES_KERNEL(recis_truncate_row_values_8, unsigned long long)

RECIS_KERNEL recis_truncate_slot_sizes(i64 n, i64 columns, const i64* item_starts,
                                       const i64* row_starts, const u64* values,
                                       const u64* offsets, const u64* weights,
                                       const i64* seq_lens, const i64* keep_last,
                                       const u64* inner_offsets, const i64* inner_counts,
                                       const i64* slot_starts, i64* sizes, i64* drops, i64* pads) {
  const TruncateColumns c{columns, item_starts, row_starts, values,
                          offsets, weights,     seq_lens,   keep_last};
  const InnerRows inner{inner_offsets, inner_counts, slot_starts};
  RECIS_FOR_EACH_ITEM(m, n) {
    recis::features::truncate_slot_sizes(c, inner, m, sizes, drops, pads);
  }
}

#define RECIS_TRUNCATE_SEQUENCE_VALUES_KERNEL(name, T)                                            \
  RECIS_KERNEL name(i64 n, i64 columns, const i64* item_starts, const i64* row_starts,            \
                    const u64* values, const u64* offsets, const u64* weights,                    \
                    const i64* seq_lens, const i64* keep_last, const u64* inner_offsets,          \
                    const i64* inner_counts, const i64* slot_starts, const i64* slot_totals,      \
                    T* out_values, float* out_weights) {                                          \
    const TruncateColumns c{columns, item_starts, row_starts, values,                             \
                            offsets, weights,     seq_lens,   keep_last};                         \
    const InnerRows inner{inner_offsets, inner_counts, slot_starts};                              \
    RECIS_FOR_EACH_ITEM(e, n) {                                                                   \
      recis::features::truncate_sequence_value<T>(c, inner, e, slot_totals, out_values,           \
                                                  out_weights);                                   \
    }                                                                                             \
  }

RECIS_TRUNCATE_SEQUENCE_VALUES_KERNEL(recis_truncate_sequence_values_1, unsigned char)
RECIS_TRUNCATE_SEQUENCE_VALUES_KERNEL(recis_truncate_sequence_values_2, unsigned short)
RECIS_TRUNCATE_SEQUENCE_VALUES_KERNEL(recis_truncate_sequence_values_4, unsigned int)
RECIS_TRUNCATE_SEQUENCE_VALUES_KERNEL(recis_truncate_sequence_values_8, unsigned long long)

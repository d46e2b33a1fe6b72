// Admission and eviction bookkeeping on the GPU (recis.core.policies on CuPy arrays).
//
// Usage slots are int64 fields of a row store (see BlockRows in row_blocks.cuh): one value per
// row, last seen step or use count. Rows outside [0, capacity) are skipped.
#include "row_blocks.cuh"

using recis_rows::BlockRows;
using recis_rows::first_item;
using recis_rows::item_stride;

#define RECIS_SLOT                                                                    \
  const unsigned long long *blocks, long long log2_block_rows, long long capacity, \
      const long long *rows, long long n

#define RECIS_STORE BlockRows{blocks, log2_block_rows, capacity}

// slot[rows[i]] = step (a repeated row gets the same value from every position).
extern "C" __global__ void touch_step(RECIS_SLOT, long long step) {
  const BlockRows store = RECIS_STORE;
  for (long long i = first_item(); i < n; i += item_stride()) {
    const long long row = rows[i];
    if (store.holds(row)) *store.row<long long>(row, 1) = step;
  }
}

// slot[rows[i]] += counts[i] (atomically: a repeated row adds every count).
extern "C" __global__ void touch_count(RECIS_SLOT, const long long* counts) {
  const BlockRows store = RECIS_STORE;
  for (long long i = first_item(); i < n; i += item_stride()) {
    const long long row = rows[i];
    if (!store.holds(row)) continue;
    atomicAdd(reinterpret_cast<unsigned long long*>(store.row<long long>(row, 1)),
              static_cast<unsigned long long>(counts[i]));
  }
}

// stale[i] = 1 where slot[rows[i]] < threshold (0 for rows not held).
extern "C" __global__ void select_stale(RECIS_SLOT, long long threshold, unsigned char* stale) {
  const BlockRows store = RECIS_STORE;
  for (long long i = first_item(); i < n; i += item_stride()) {
    const long long row = rows[i];
    stale[i] = store.holds(row) && *store.row<const long long>(row, 1) < threshold;
  }
}

// Frequency admission over distinct keys with rows `rows` in the admission count table
// `counts`: count = (is_new[i] ? 0 : counts[rows[i]]) + seen[i]; counts[rows[i]] = count;
// admitted[i] = count >= threshold.
extern "C" __global__ void advance_counts(long long* counts, const long long* rows,
                                          const unsigned char* is_new, const long long* seen,
                                          long long threshold, unsigned char* admitted,
                                          long long n) {
  for (long long i = first_item(); i < n; i += item_stride()) {
    const long long row = rows[i];
    const long long count = (is_new[i] ? 0 : counts[row]) + seen[i];
    counts[row] = count;
    admitted[i] = count >= threshold;
  }
}

// Support for the feature kernels: portable qualifiers, the per-item loop, integer types, pointer
// tables and the segment search that maps a flat item index to its feature and row.
//
// Every kernel of features.cu is a grid-stride loop over items whose body only calls RECIS_FN
// functions. Each item writes only its own output locations and reads nothing written in the same
// launch, so the order of items never changes a result. The tests build the kernels for the host
// too (tests/host_cuda.py), with the CUDA builtins they use defined there.
#pragma once

#define RECIS_FN __host__ __device__ __forceinline__
#define RECIS_KERNEL extern "C" __global__ void
#define RECIS_FOR_EACH_ITEM(i, n)                                                 \
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
       i += (long long)gridDim.x * blockDim.x)

namespace recis::features {

typedef unsigned long long u64;
typedef long long i64;

// Feature f's array from a table of device addresses (one uint64 per feature; 0 for "none").
template <typename T>
RECIS_FN T* table_entry(const u64* table, i64 f) {
  return reinterpret_cast<T*>(table[f]);
}

// The largest k in [0, count) with sorted[k] <= value, for non-decreasing `sorted` with
// sorted[0] <= value: the segment (feature, row) holding item `value` when `sorted` are the
// segments' first items. Empty segments are skipped.
RECIS_FN i64 last_at_most(const i64* sorted, i64 count, i64 value) {
  i64 low = 0, high = count;
  while (low < high) {
    i64 middle = low + ((high - low) >> 1);
    if (sorted[middle] <= value) {
      low = middle + 1;
    } else {
      high = middle;
    }
  }
  return low - 1;
}

RECIS_FN i64 smaller(i64 a, i64 b) { return a < b ? a : b; }

// Python's a % b (the result has the sign of b), for b > 0: in [0, b).
RECIS_FN i64 floor_mod(i64 a, i64 b) {
  i64 r = a % b;
  return r < 0 ? r + b : r;
}

// The high 64 bits of the 128-bit product of a and b.
RECIS_FN u64 multiply_high(u64 a, u64 b) {
#if defined(__CUDA_ARCH__)
  return __umul64hi(a, b);
#else
  return (u64)(((unsigned __int128)a * b) >> 64);
#endif
}

// Offsets of every segment from running totals: for segment f (items starts[f] to starts[f+1])
// and m in [0, starts[f+1] - starts[f]], out[starts[f] + f + m] = totals[starts[f] + m] -
// totals[starts[f]]. `shifted` holds starts[f] + f.
RECIS_FN void segment_offsets(i64 m, const i64* starts, const i64* shifted, i64 segments,
                              const i64* totals, i64* out) {
  const i64 f = last_at_most(shifted, segments, m);
  const i64 local = m - shifted[f];
  out[m] = totals[starts[f] + local] - totals[starts[f]];
}

}  // namespace recis::features

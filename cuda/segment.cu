// Embedding combiners on the GPU (recis.core.segment on CuPy arrays): sum, mean and tile over
// ragged segments, forward and backward.
//
// Shared arguments: `rows` [num_rows, dim] of T (float, double, or float16 words), `index`
// [num_ids] (the row of each id), `offsets` [num_segments + 1] and `weights` [num_ids] float32
// (null: all ones). Results are float32 and equal the CPU's bit for bit: every sum runs in id
// order with one rounding per operation (recis_rows::fadd and its kin: no fused multiply-add, no flush to zero), exactly as
// the CPU kernels do.
//
// Forward: a group of `group` threads (a power of two up to 32, so groups never straddle a warp)
// per segment; its lanes stride the dim and each walks the segment's ids in order, reading
// neighbouring values of each row together. Backward: segment_sources gives every id its source
// gradient row and scale; the caller sorts ids by row (stably) and accumulate_rows sums each row's
// contributions in id order with one group per row, so no atomics are needed.
//
// The host does not check indices or offsets (that would wait for the device): an index outside
// [0, num_rows) reads NaN, and offsets are clamped to [0, num_ids].
#include "row_blocks.cuh"

using recis_rows::fadd;
using recis_rows::fdiv;
using recis_rows::first_item;
using recis_rows::fmul;
using recis_rows::HalfBits;
using recis_rows::item_stride;

namespace {

__device__ __forceinline__ void segment_range(const long long* offsets, long long segment,
                                              long long num_ids, long long* start,
                                              long long* stop) {
  const long long first = min(max(offsets[segment], 0ll), num_ids);
  *start = first;
  *stop = min(max(offsets[segment + 1], first), num_ids);
}

__device__ __forceinline__ float weight_of(const float* weights, long long i) {
  return weights == nullptr ? 1.0f : weights[i];
}

template <class T>
__device__ __forceinline__ float row_value(const T* rows, long long num_rows, long long dim,
                                           long long row, long long d) {
  if (row < 0 || row >= num_rows) return __int_as_float(0x7FC00000);
  return recis_rows::to_float(rows[row * dim + d]);
}

// Σ weights over [start, stop), in order, in float32.
__device__ __forceinline__ float weight_sum(const float* weights, long long start,
                                            long long stop) {
  float total = 0.0f;
  for (long long i = start; i < stop; ++i) total = fadd(total, weight_of(weights, i));
  return total;
}

template <class T>
__device__ void pool(const T* rows, long long num_rows, long long dim, const long long* index,
                     long long num_ids, const long long* offsets, const float* weights,
                     int normalize, long long group, float* out, long long total) {
  for (long long t = first_item(); t < total; t += item_stride()) {
    const long long segment = t / group;
    long long start, stop;
    segment_range(offsets, segment, num_ids, &start, &stop);
    const float weight_total = normalize ? weight_sum(weights, start, stop) : 1.0f;
    for (long long d = t - segment * group; d < dim; d += group) {
      float sum = 0.0f;
      for (long long i = start; i < stop; ++i) {
        const float value = row_value(rows, num_rows, dim, index[i], d);
        sum = fadd(sum, fmul(weight_of(weights, i), value));
      }
      if (normalize) sum = weight_total == 0.0f ? 0.0f : fdiv(sum, weight_total);
      out[segment * dim + d] = sum;
    }
  }
}

template <class T>
__device__ void tile(const T* rows, long long num_rows, long long dim, const long long* index,
                     long long num_ids, const long long* offsets, const float* weights,
                     long long tile_len, float* out, long long total) {
  const long long per_segment = tile_len * dim;
  for (long long t = first_item(); t < total; t += item_stride()) {
    const long long segment = t / per_segment;
    const long long position = (t - segment * per_segment) / dim;
    const long long d = t - segment * per_segment - position * dim;
    long long start, stop;
    segment_range(offsets, segment, num_ids, &start, &stop);
    float value = 0.0f;
    if (position < stop - start) {
      const long long i = start + position;
      value = fmul(weight_of(weights, i), row_value(rows, num_rows, dim, index[i], d));
    }
    out[t] = value;
  }
}

}  // namespace

#define RECIS_POOL_KERNEL(SUFFIX, T)                                                             \
  extern "C" __global__ void segment_pool_##SUFFIX(                                              \
      const T* rows, long long num_rows, long long dim, const long long* index,                 \
      long long num_ids, const long long* offsets, const float* weights, int normalize,         \
      long long group, float* out, long long total) {                                            \
    pool<T>(rows, num_rows, dim, index, num_ids, offsets, weights, normalize, group, out, total); \
  }                                                                                              \
  extern "C" __global__ void segment_tile_##SUFFIX(                                              \
      const T* rows, long long num_rows, long long dim, const long long* index,                 \
      long long num_ids, const long long* offsets, const float* weights, long long tile_len,    \
      float* out, long long total) {                                                             \
    tile<T>(rows, num_rows, dim, index, num_ids, offsets, weights, tile_len, out, total);        \
  }

// segment_pool_<dtype>: out[b] = Σ w_i·rows[index[i]] over segment b, divided by Σ w_i when
// `normalize` (zeros where that sum is 0); total = num_segments * group.
// segment_tile_<dtype>: out[b, j] = w_i·rows[index[i]] for the j-th id i of segment b, zeros past
// the segment's end; total = num_segments * tile_len * dim.
RECIS_POOL_KERNEL(float32, float)
RECIS_POOL_KERNEL(float64, double)
RECIS_POOL_KERNEL(float16, HalfBits)

// For every id i: `source[i]` = the row of the forward output whose gradient flows to it (pool:
// its segment; tile: segment * tile_len + position) or -1 when none does (a tile position past
// tile_len, a mean segment whose weights sum to 0), and `scale[i]` its factor (pool: w_i / Σ w,
// with Σ w = 1 for a sum; tile: w_i). One group of `group` threads per segment; ids outside every
// segment are left alone (the caller fills `source` with -1 first). total = num_segments * group.
extern "C" __global__ void segment_sources(const long long* offsets, long long num_segments,
                                           long long num_ids, const float* weights,
                                           int normalize, long long tile_len, long long group,
                                           long long* source, float* scale, long long total) {
  for (long long t = first_item(); t < total; t += item_stride()) {
    const long long segment = t / group;
    long long start, stop;
    segment_range(offsets, segment, num_ids, &start, &stop);
    if (tile_len > 0) {
      for (long long i = start + (t - segment * group); i < stop; i += group) {
        const long long position = i - start;
        source[i] = position < tile_len ? segment * tile_len + position : -1;
        scale[i] = weight_of(weights, i);
      }
      continue;
    }
    const float weight_total = normalize ? weight_sum(weights, start, stop) : 1.0f;
    const bool dropped = weight_total == 0.0f;
    for (long long i = start + (t - segment * group); i < stop; i += group) {
      source[i] = dropped ? -1 : segment;
      scale[i] = fdiv(weight_of(weights, i), weight_total);
    }
  }
}

// out[u] = Σ scale[i]·values[source[i]] over k in [begin[u], end[u]) with i = order[k], in that
// order, skipping sources < 0; then divided by `divisor` when `divide`. A null `source` means
// source[i] = i, a null `scale` a plain sum. One group of `group` threads per output row, striding
// the dim; total = num_out * group.
extern "C" __global__ void accumulate_rows(const long long* order, const long long* begin,
                                           const long long* end, const long long* source,
                                           const float* scale, const float* values,
                                           long long dim, long long group, int divide,
                                           float divisor, float* out, long long total) {
  for (long long t = first_item(); t < total; t += item_stride()) {
    const long long u = t / group;
    const long long first = begin[u], stop = end[u];
    for (long long d = t - u * group; d < dim; d += group) {
      float sum = 0.0f;
      for (long long k = first; k < stop; ++k) {
        const long long i = order[k];
        const long long from = source == nullptr ? i : source[i];
        if (from < 0) continue;
        const float value = values[from * dim + d];
        sum = fadd(sum, scale == nullptr ? value : fmul(scale[i], value));
      }
      out[u * dim + d] = divide ? fdiv(sum, divisor) : sum;
    }
  }
}

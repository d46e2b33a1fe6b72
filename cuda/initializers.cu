// Initial values of new embedding rows on the GPU (recis.core.initializers on CuPy arrays).
//
// Every kernel fills out[n, dim] (float32, C-contiguous); work item t is element t % dim of id
// t / dim. Element j of the row of ids[i] comes from the row key of ids[i] in its table's stream
// (see random.cuh): with `tags` null every id uses `single_stream`, otherwise id i uses
// streams[tags[i]], and a tag outside [0, num_streams) makes its row NaN (the host cannot check
// tags without waiting for the device).
#include "random.cuh"

using recis_rows::first_item;
using recis_rows::item_stride;

namespace {

struct Streams {
  const unsigned long long* streams;
  long long num_streams;
  const long long* tags;
  unsigned long long single_stream;

  // The stream of id i, or false when its tag names no table.
  __device__ __forceinline__ bool of(long long i, unsigned long long* stream) const {
    if (tags == nullptr) {
      *stream = single_stream;
      return true;
    }
    const long long tag = tags[i];
    if (tag < 0 || tag >= num_streams) return false;
    *stream = streams[tag];
    return true;
  }
};

// Calls value(key, element) (a float32) for every element and stores it.
template <class Value>
__device__ void fill_rows(const long long* ids, long long dim, Streams tables, float* out,
                          long long total, Value value) {
  for (long long t = first_item(); t < total; t += item_stride()) {
    const long long i = t / dim;
    const unsigned long long element = static_cast<unsigned long long>(t - i * dim);
    unsigned long long stream;
    if (!tables.of(i, &stream)) {
      out[t] = __int_as_float(0x7FC00000);
      continue;
    }
    out[t] = value(recis_random::row_key(stream, ids[i]), element);
  }
}

}  // namespace

#define RECIS_TABLES                                                                    \
  const long long *ids, long long dim, const unsigned long long *streams,              \
      long long num_streams, const long long *tags, unsigned long long single_stream, \
      float *out, long long total

#define RECIS_STREAMS Streams{streams, num_streams, tags, single_stream}

// out = uniform(low, high) per element (parameters rounded to float32 by the caller).
extern "C" __global__ void fill_uniform(RECIS_TABLES, float low, float high) {
  fill_rows(ids, dim, RECIS_STREAMS, out, total,
            [=](unsigned long long key, unsigned long long element) {
              return recis_random::uniform_value(key, element, low, high);
            });
}

// out = normal(mean, std) per element.
extern "C" __global__ void fill_normal(RECIS_TABLES, float mean, float std) {
  fill_rows(ids, dim, RECIS_STREAMS, out, total,
            [=](unsigned long long key, unsigned long long element) {
              return recis_random::normal_value(key, element, 0, mean, std);
            });
}

// out = normal(mean, std) restricted to [a, b] per element.
extern "C" __global__ void fill_truncated_normal(RECIS_TABLES, float mean, float std, float a,
                                                 float b) {
  fill_rows(ids, dim, RECIS_STREAMS, out, total,
            [=](unsigned long long key, unsigned long long element) {
              return recis_random::truncated_normal_value(key, element, mean, std, a, b);
            });
}

// bits[n, dim] = the generator's raw bits of (attempt, lane) per element (for verification).
extern "C" __global__ void draw_raw_bits(RECIS_TABLES, unsigned long long attempt,
                                         unsigned long long lane, unsigned long long* bits) {
  for (long long t = first_item(); t < total; t += item_stride()) {
    const long long i = t / dim;
    unsigned long long stream;
    if (!RECIS_STREAMS.of(i, &stream)) {
      bits[t] = 0;
      continue;
    }
    const unsigned long long key = recis_random::row_key(stream, ids[i]);
    bits[t] = recis_random::draw_bits(key, static_cast<unsigned long long>(t - i * dim), attempt,
                                      lane);
  }
}

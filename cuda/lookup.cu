// A training lookup of a GPU table in three kernels and one prefix sum
// (recis/core/cuda/lookup.py): deduplication, id-map probe, row allocation, initial values and
// the gather of the rows, for a table without admission or eviction policy.
//
// The batch's n keys (with their tags) are deduplicated *by position*: the distinct entry of a
// key is the position of its first occurrence u, so every per-distinct array has n entries and
// those of other positions are padding (count 0, row -1, zero values). Nothing is read back.
//   lookup_dedupe   each position finds or claims its key's slot in a scratch table (zeroed,
//                   at most half full) holding the key's smallest position; counts[i] = 0
//   lookup_probe    first[i] = that position, counts[first[i]] += 1; each first occurrence
//                   probes the id map: its row, or a claimed empty slot for a new key, whose
//                   flag new[u] = 1 (flags and counts are one array, scan = [new | counts])
//   (an inclusive prefix sum of the flags ranks the new keys)
//   lookup_settle   new keys get the rows of their ranks from the row allocator (as
//                   allocate_ranked_rows), their slots those rows, their rows initial values and
//                   slot fills straight in the row store's blocks; values[u] = the row of every
//                   first occurrence (the initial value of a new one), and the scratch slots are
//                   emptied for the next batch. The first thread writes the allocator's next
//                   state to the other of its two buffers and publishes it (as
//                   allocate_ranked_commit).
#include "common.cuh"
#include "random.cuh"

using recis::Slot;
using recis::for_each_index;
using recis::home_slot;
using recis::pack;
using recis::row_of;
using recis::tag_of;
using recis_rows::BlockRows;

namespace {

// The distribution of initial values (recis.core.initializers): kind 0 constant p0, 1 uniform
// (p0, p1), 2 normal (p0, p1), 3 truncated normal (p0, p1) within [p2, p3].
struct Initial {
  int kind;
  float p0, p1, p2, p3;

  __device__ float value(unsigned long long key, unsigned long long element) const {
    switch (kind) {
      case 0: return p0;
      case 1: return recis_random::uniform_value(key, element, p0, p1);
      case 2: return recis_random::normal_value(key, element, 0, p0, p1);
      default: return recis_random::truncated_normal_value(key, element, p0, p1, p2, p3);
    }
  }
};

// Stores a float32 value as the embedding's storage dtype (0 float32, 1 float16, 2 bfloat16) and
// returns what a gather of it reads back.
__device__ float store_value(BlockRows embedding, long long row, long long dim, long long e,
                             int dtype, float value) {
  if (dtype == 1) {
    const auto bits = recis_rows::from_float<recis_rows::HalfBits>(value);
    embedding.row<recis_rows::HalfBits>(row, dim)[e] = bits;
    return recis_rows::to_float(bits);
  }
  if (dtype == 2) {
    const auto bits = recis_rows::from_float<recis_rows::BFloat16Bits>(value);
    embedding.row<recis_rows::BFloat16Bits>(row, dim)[e] = bits;
    return recis_rows::to_float(bits);
  }
  embedding.row<float>(row, dim)[e] = value;
  return value;
}

__device__ float load_value(BlockRows embedding, long long row, long long dim, long long e,
                            int dtype) {
  if (dtype == 1) return recis_rows::to_float(embedding.row<recis_rows::HalfBits>(row, dim)[e]);
  if (dtype == 2) {
    return recis_rows::to_float(embedding.row<recis_rows::BFloat16Bits>(row, dim)[e]);
  }
  return embedding.row<float>(row, dim)[e];
}

// Element e of a row's slot field f: fields[4 f .. 4 f + 3] = (address of the field's block
// addresses, width in elements, element bytes, fill bits).
__device__ void fill_slot(const unsigned long long* fields, long long f, long long log2_rows,
                          long long row, long long e) {
  const unsigned long long* at = fields + 4 * f;
  const long long width = static_cast<long long>(at[1]), bytes = static_cast<long long>(at[2]);
  if (e >= width) return;
  const BlockRows field{reinterpret_cast<const unsigned long long*>(at[0]), log2_rows,
                        1ll << 62};
  const unsigned long long bits = at[3];
  switch (bytes) {
    case 1: field.row<unsigned char>(row, width)[e] = static_cast<unsigned char>(bits); break;
    case 2: field.row<unsigned short>(row, width)[e] = static_cast<unsigned short>(bits); break;
    case 4: field.row<unsigned int>(row, width)[e] = static_cast<unsigned int>(bits); break;
    default: field.row<unsigned long long>(row, width)[e] = bits; break;
  }
}

}  // namespace

// scratch_slot[i] = the scratch slot of (keys[i], tag), which ends up holding the key's smallest
// position (as dedupe_claim); counts[i] = 0.
extern "C" __global__ void lookup_dedupe(Slot* scratch, long long mask, int shift,
                                         const long long* __restrict__ keys,
                                         const long long* __restrict__ tags, long long tag_stride,
                                         long long n, long long* __restrict__ scratch_slot,
                                         long long* __restrict__ counts) {
  for_each_index(n, [&](long long i) {
    counts[i] = 0;
    scratch_slot[i] =
        recis::claim_first_position(scratch, mask, shift, keys[i], tags[i * tag_stride], i);
  });
}

// first[i] = the smallest position of key i, counts[first[i]] += 1 (counts = scan + n). A first
// occurrence u probes the id map `slots`: a present key gives rows[u] = its row, map_slot[u] = -1
// and scan[u] = 0; a new key claims an empty slot (the placeholder -pack(tag, u)): rows[u] = -1,
// map_slot[u] = that slot, scan[u] = 1. Other positions get rows -1, map_slot -1, scan 0. The
// first occurrences hold distinct keys, so a slot claimed in this kernel never holds the key
// probed for: probes step over it. The map must have room for every key being new.
extern "C" __global__ void lookup_probe(const Slot* __restrict__ scratch,
                                        const long long* __restrict__ scratch_slot, Slot* slots,
                                        long long mask, int shift,
                                        const long long* __restrict__ keys,
                                        const long long* __restrict__ tags, long long tag_stride,
                                        long long n, long long* __restrict__ first,
                                        long long* scan, long long* __restrict__ rows,
                                        long long* __restrict__ map_slot) {
  for_each_index(n, [&](long long i) {
    const long long f = row_of(scratch[scratch_slot[i]].packed);
    first[i] = f;
    atomicAdd(reinterpret_cast<unsigned long long*>(&scan[n + f]), 1ULL);
    rows[i] = -1;
    map_slot[i] = -1;
    scan[i] = 0;
    if (f != i) return;
    const long long key = keys[i];
    const long long tag = tags[i * tag_stride];
    long long s = home_slot(key, tag, shift);
    while (true) {
      const Slot seen = slots[s];
      if (seen.packed > 0) {  // settled before this kernel
        if (seen.key == key && tag_of(seen.packed) == tag) {
          rows[i] = row_of(seen.packed);
          return;
        }
      } else if (seen.packed == 0 &&
                 recis::atomic_cas(&slots[s].packed, 0, -pack(tag, i)) == 0) {
        slots[s].key = key;  // no other probe compares keys of slots claimed in this kernel
        map_slot[i] = s;
        scan[i] = 1;
        return;
      }
      s = (s + 1) & mask;
    }
  });
}

// Items t = u * dim + e, total = n * dim (launched over at least one item). `ranks` is the
// inclusive prefix sum of scan[0..n); the allocator's state is read from state_in (high-water
// mark, free rows, ...) and written to state_out, as allocate_ranked_rows and
// allocate_ranked_commit do, with `requested` as its third value and published to `host`.
// Element e of first occurrence u: a new key's row gets initial value e (key row_key(streams[tag],
// keys[u]), or `single_stream` when tags is per batch) and element e of every slot field;
// values[t] = the row's element e as float32 (zeros where u is no first occurrence).
extern "C" __global__ void lookup_settle(
    Slot* slots, Slot* scratch, const long long* __restrict__ scratch_slot,
    const long long* __restrict__ keys, const long long* __restrict__ tags, long long tag_stride,
    long long n, const long long* __restrict__ first, const long long* __restrict__ ranks,
    const long long* __restrict__ map_slot, long long* rows, const long long* state_in,
    long long* state_out, const long long* __restrict__ free_rows, long long free_size,
    long long requested, volatile long long* host, const unsigned long long* embedding_blocks,
    long long log2_rows, long long dim, int dtype, const unsigned long long* slot_fields,
    long long num_slot_fields, const unsigned long long* streams,
    unsigned long long single_stream, int kind, float p0, float p1, float p2, float p3,
    float* values, long long total) {
  const long long high_water = state_in[0], free_count = state_in[1];
  const long long count = n > 0 ? ranks[n - 1] : 0;
  const long long reused = count < free_count ? count : free_count;
  if (recis_rows::first_item() == 0) {
    state_out[0] = high_water + count - reused;
    state_out[1] = free_count - reused;
    state_out[2] = requested;
    host[0] = state_out[0];
    host[1] = state_out[1];
    __threadfence_system();
    host[2] = state_out[2];
  }
  const BlockRows embedding{embedding_blocks, log2_rows, 1ll << 62};
  const Initial initial{kind, p0, p1, p2, p3};
  for (long long t = recis_rows::first_item(); t < total; t += recis_rows::item_stride()) {
    const long long u = t / dim, e = t - u * dim;
    if (e == 0) scratch[scratch_slot[u]] = Slot{0, 0};
    if (first[u] != u) {
      values[t] = 0.0f;
      continue;
    }
    if (map_slot[u] < 0) {
      values[t] = load_value(embedding, rows[u], dim, e, dtype);
      continue;
    }
    const long long rank = ranks[u] - 1;
    long long row;
    if (rank < reused && free_size > 0) {
      long long at = free_count - 1 - rank;
      row = free_rows[at < 0 ? 0 : (at >= free_size ? free_size - 1 : at)];
    } else {
      row = high_water + rank - reused;
    }
    const long long tag = tags[u * tag_stride];
    if (e == 0) {
      slots[map_slot[u]].packed = pack(tag, row);
      rows[u] = row;
    }
    const unsigned long long stream = tag_stride ? streams[tag] : single_stream;
    const float value = initial.value(recis_random::row_key(stream, keys[u]), e);
    values[t] = store_value(embedding, row, dim, e, dtype, value);
    for (long long f = 0; f < num_slot_fields; ++f) fill_slot(slot_fields, f, log2_rows, row, e);
  }
}

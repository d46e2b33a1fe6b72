// Deduplication kernels: the GPU twin of recis/core/kernels/dedupe.py.
//
// A zeroed scratch table (Slot[capacity], see common.cuh) maps each distinct (key, tag) of the
// batch to pack(tag, p), p the smallest batch position holding it. Two kernels:
//   dedupe_claim            each position finds or claims the slot of its pair and records it
//   dedupe_first_positions  replaces each recorded slot by the pair's smallest position
// The positions then become ranks of first occurrence with mark_first_occurrences and
// rank_first_occurrences (id_map.cu) around an inclusive prefix sum.
#include "common.cuh"

using recis::Slot;
using recis::for_each_index;
using recis::row_of;

// slot_of[i] = the scratch slot of (keys[i], tag); the slot ends up holding the pair's smallest
// position. Scratch must start zeroed with room for every pair.
extern "C" __global__ void dedupe_claim(Slot* scratch, long long mask, int shift,
                                        const long long* __restrict__ keys,
                                        const long long* __restrict__ tags, long long tag_stride,
                                        long long n, long long* __restrict__ slot_of) {
    for_each_index(n, [&](long long i) {
        slot_of[i] = recis::claim_first_position(scratch, mask, shift, keys[i],
                                                 tags[i * tag_stride], i);
    });
}

// In place: slot_or_first[i] (a slot from dedupe_claim) becomes the smallest position of the
// pair at position i.
extern "C" __global__ void dedupe_first_positions(const Slot* __restrict__ scratch,
                                                  long long* slot_or_first, long long n) {
    for_each_index(n, [&](long long i) {
        slot_or_first[i] = row_of(scratch[slot_or_first[i]].packed);
    });
}

// counts[index[i]] += 1 for every i: how often each of `size` distinct keys occurs, from the
// inverse index (int64 counts, zeroed; integer additions make the result exact). Indices outside
// [0, size) are not counted.
extern "C" __global__ void dedupe_count_occurrences(const long long* __restrict__ index,
                                                    long long n, long long size,
                                                    long long* counts) {
    for_each_index(n, [&](long long i) {
        const long long k = index[i];
        if (0 <= k && k < size) {
            atomicAdd(reinterpret_cast<unsigned long long*>(&counts[k]), 1ULL);
        }
    });
}

// sums[index[i]] += weights[i] for every i: the total weight (e.g. occurrences counted elsewhere)
// of each of `size` distinct keys (int64 sums, zeroed; exact). Indices outside [0, size) are
// not counted.
extern "C" __global__ void dedupe_sum_weights(const long long* __restrict__ index,
                                              const long long* __restrict__ weights, long long n,
                                              long long size, long long* sums) {
    for_each_index(n, [&](long long i) {
        const long long k = index[i];
        if (0 <= k && k < size) {
            atomicAdd(reinterpret_cast<unsigned long long*>(&sums[k]),
                      static_cast<unsigned long long>(weights[i]));
        }
    });
}

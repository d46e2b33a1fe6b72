// Deduplication kernels: the GPU twin of recis/core/kernels/dedupe.py.
//
// A zeroed scratch table (Slot[capacity], see common.cuh) maps each distinct (key, tag) of the
// batch to pack(tag, p), p the smallest batch position holding it. Two kernels:
//   dedupe_claim            each position finds or claims the slot of its pair and records it
//   dedupe_first_positions  replaces each recorded slot by the pair's smallest position
// The positions then become ranks of first occurrence with mark_first_occurrences and
// rank_first_occurrences (id_map.cu) around an inclusive prefix sum.
#include "common.cuh"

using recis::CLAIMING;
using recis::Slot;
using recis::for_each_index;
using recis::home_slot;
using recis::pack;
using recis::row_of;
using recis::tag_of;

// slot_of[i] = the scratch slot of (keys[i], tag); the slot ends up holding the pair's smallest
// position. Scratch must start zeroed with room for every pair.
extern "C" __global__ void dedupe_claim(Slot* scratch, long long mask, int shift,
                                        const long long* __restrict__ keys,
                                        const long long* __restrict__ tags, long long tag_stride,
                                        long long n, long long* __restrict__ slot_of) {
    for_each_index(n, [&](long long i) {
        const long long key = keys[i];
        const long long tag = tags[i * tag_stride];
        const long long mine = pack(tag, i);
        long long s = home_slot(key, tag, shift);
        while (true) {
            long long* packed_at = &scratch[s].packed;
            long long packed = recis::load_acquire(packed_at);
            if (packed == 0) {
                if (recis::atomic_cas(packed_at, 0, CLAIMING) == 0) {
                    recis::store_volatile(&scratch[s].key, key);
                    recis::store_release(packed_at, mine);
                    slot_of[i] = s;
                    return;
                }
                packed = CLAIMING;  // lost the race: wait for the winner's key
            }
            while (packed == CLAIMING) {  // the acquiring load orders the key read after it
                packed = recis::load_acquire(packed_at);
            }
            if (recis::load_volatile(&scratch[s].key) == key && tag_of(packed) == tag) {
                if (row_of(packed) > i) {  // only a smaller position can change the minimum
                    atomicMin(packed_at, mine);
                }
                slot_of[i] = s;
                return;
            }
            s = (s + 1) & mask;
        }
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

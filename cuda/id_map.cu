// Open-addressing id map kernels: the GPU twins of recis/core/kernels/id_map.py.
//
// Slot layout and hashing: see common.cuh. Arguments shared by most kernels:
//   slots       Slot[capacity], capacity = mask + 1 a power of two, shift = 64 - log2(capacity)
//   keys, n     the batch; tags are read at tags[i * tag_stride] (stride 0: one tag for all)
//
// find_or_insert runs in phases, each a kernel, so every phase sees the previous one complete:
//   id_map_find_or_claim   present keys get their row; each absent key claims one slot, which
//                          then holds the key and the placeholder -pack(tag, p), p being the
//                          smallest batch position holding that key
//   id_map_claimants       first[i] = that smallest position p for every absent key i
//   mark_first_occurrences / rank_first_occurrences  (with an inclusive prefix sum between them)
//                          turn first positions into ranks of first occurrence
//   id_map_settle          new keys get the rows allocated for their ranks (on the device, by
//                          recis/core/cuda/row_allocator.py: the host never reads the count)
// Erase is a phase of its own: id_map_erase_mark, id_map_erase_clusters, id_map_erase_compact.
#include "common.cuh"

using recis::CLAIMING;
using recis::Slot;
using recis::for_each_index;
using recis::home_slot;
using recis::pack;
using recis::row_of;
using recis::tag_of;

namespace {

// Stores (key, packed) in the first empty slot from `s` on. Only for kernels whose threads never
// compare keys (inserts of keys known absent and distinct), so the key may land after the claim.
__device__ void place(Slot* slots, long long mask, long long s, long long key, long long packed) {
    while (true) {
        long long* packed_at = &slots[s].packed;
        if (recis::load_volatile(packed_at) == 0 && recis::atomic_cas(packed_at, 0, packed) == 0) {
            slots[s].key = key;
            return;
        }
        s = (s + 1) & mask;
    }
}

// The packed word of a slot claimed in the running kernel, once its claimant has published the
// key; the acquiring load orders the caller's following read of the key after that publication.
__device__ long long wait_for_claim(const long long* packed_at) {
    long long packed;
    do {
        packed = recis::load_acquire(packed_at);
    } while (packed == CLAIMING);
    return packed;
}

// Moves later entries of the probe chain back into `hole` until an empty slot, then empties the
// last hole (backward-shift deletion, as recis.core.kernels.id_map._shift_back).
__device__ void shift_back(Slot* slots, long long mask, int shift, long long hole) {
    long long j = hole;
    while (true) {
        j = (j + 1) & mask;
        const Slot entry = slots[j];
        if (entry.packed == 0) {
            break;
        }
        const long long live = entry.packed < 0 ? -entry.packed : entry.packed;
        const long long home = home_slot(entry.key, tag_of(live), shift);
        // the entry may move to the hole only if its home is not cyclically in (hole, j]
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            slots[hole] = entry;
            hole = j;
        }
    }
    slots[hole] = Slot{0, 0};
}

}  // namespace

// out[i] = home slot of (keys[i], tag) in a table of 2**(64 - shift) slots.
extern "C" __global__ void id_map_home_slots(const long long* __restrict__ keys,
                                             const long long* __restrict__ tags,
                                             long long tag_stride, int shift, long long n,
                                             long long* __restrict__ out) {
    for_each_index(n, [&](long long i) { out[i] = home_slot(keys[i], tags[i * tag_stride], shift); });
}

// out[i] = row of (keys[i], tag), or -1 where missing.
extern "C" __global__ void id_map_find(const Slot* __restrict__ slots, long long mask, int shift,
                                       const long long* __restrict__ keys,
                                       const long long* __restrict__ tags, long long tag_stride,
                                       long long n, long long* __restrict__ out) {
    for_each_index(n, [&](long long i) {
        const long long key = keys[i];
        const long long tag = tags[i * tag_stride];
        long long s = home_slot(key, tag, shift);
        while (true) {
            const Slot slot = slots[s];
            if (slot.packed == 0) {
                out[i] = -1;
                return;
            }
            if (slot.key == key && tag_of(slot.packed) == tag) {
                out[i] = row_of(slot.packed);
                return;
            }
            s = (s + 1) & mask;
        }
    });
}

// Inserts (keys[i], tag) with rows[i]; the keys must be absent and distinct.
extern "C" __global__ void id_map_insert_new(Slot* slots, long long mask, int shift,
                                             const long long* __restrict__ keys,
                                             const long long* __restrict__ tags,
                                             long long tag_stride,
                                             const long long* __restrict__ rows, long long n) {
    for_each_index(n, [&](long long i) {
        const long long tag = tags[i * tag_stride];
        place(slots, mask, home_slot(keys[i], tag, shift), keys[i], pack(tag, rows[i]));
    });
}

// Moves every entry of old_slots into the empty `slots`.
extern "C" __global__ void id_map_rehash(const Slot* __restrict__ old_slots,
                                         long long old_capacity, Slot* slots, long long mask,
                                         int shift) {
    for_each_index(old_capacity, [&](long long i) {
        const Slot entry = old_slots[i];
        if (entry.packed != 0) {
            const long long home = home_slot(entry.key, tag_of(entry.packed), shift);
            place(slots, mask, home, entry.key, entry.packed);
        }
    });
}

// Present keys: rows[i] = row, slot_of[i] = -1. Absent keys: rows[i] = -1 and slot_of[i] = the
// slot claimed for the key, holding -pack(tag, smallest position of the key in the batch) once
// the kernel ends. The table must have room for every key being new.
extern "C" __global__ void id_map_find_or_claim(Slot* slots, long long mask, int shift,
                                                const long long* __restrict__ keys,
                                                const long long* __restrict__ tags,
                                                long long tag_stride, long long n,
                                                long long* __restrict__ rows,
                                                long long* __restrict__ slot_of) {
    for_each_index(n, [&](long long i) {
        const long long key = keys[i];
        const long long tag = tags[i * tag_stride];
        const long long placeholder = -pack(tag, i);
        long long s = home_slot(key, tag, shift);
        while (true) {
            // Settled entries (> 0) were written by earlier kernels and never change in this one,
            // so a plain load reads them whole; anything else is re-read through atomics.
            const Slot seen = slots[s];
            if (seen.packed > 0) {
                if (seen.key == key && tag_of(seen.packed) == tag) {
                    rows[i] = row_of(seen.packed);
                    slot_of[i] = -1;
                    return;
                }
                s = (s + 1) & mask;
                continue;
            }
            long long* packed_at = &slots[s].packed;
            if (seen.packed == 0 && recis::atomic_cas(packed_at, 0, CLAIMING) == 0) {
                recis::store_volatile(&slots[s].key, key);
                recis::store_release(packed_at, placeholder);
                rows[i] = -1;
                slot_of[i] = s;
                return;
            }
            // The slot was empty when the kernel started, so it was claimed in this kernel.
            const long long claim = -wait_for_claim(packed_at);
            if (recis::load_volatile(&slots[s].key) == key && tag_of(claim) == tag) {
                if (row_of(claim) > i) {  // keep the smallest position
                    atomicMax(packed_at, placeholder);
                }
                rows[i] = -1;
                slot_of[i] = s;
                return;
            }
            s = (s + 1) & mask;
        }
    });
}

// first[i] = smallest batch position of key i's claim, or -1 where slot_of[i] < 0.
extern "C" __global__ void id_map_claimants(const Slot* __restrict__ slots,
                                            const long long* __restrict__ slot_of, long long n,
                                            long long* __restrict__ first) {
    for_each_index(n, [&](long long i) {
        const long long s = slot_of[i];
        first[i] = s < 0 ? -1 : row_of(-slots[s].packed);
    });
}

// flags[i] = 1 where i is the first occurrence of its key (first[i] == i), else 0.
extern "C" __global__ void mark_first_occurrences(const long long* __restrict__ first,
                                                  long long n, long long* __restrict__ flags) {
    for_each_index(n, [&](long long i) { flags[i] = first[i] == i ? 1 : 0; });
}

// With counts = inclusive prefix sum of mark_first_occurrences' flags: replaces first positions
// by ranks of first occurrence (in place) and writes positions[rank] = first position.
extern "C" __global__ void rank_first_occurrences(long long* first,
                                                  const long long* __restrict__ counts,
                                                  long long n, long long* __restrict__ positions) {
    for_each_index(n, [&](long long i) {
        const long long f = first[i];
        if (f < 0) {
            return;
        }
        first[i] = counts[f] - 1;
        if (f == i) {
            positions[counts[i] - 1] = i;
        }
    });
}

// Gives new keys their rows: rows[i] = new_rows[first[i]] where first[i] >= 0 (a rank by now),
// and the placeholder of the key of rank k (first seen at positions[k]) becomes new_rows[k].
// new_rows may be padded past the number of new keys with -1, which is skipped.
extern "C" __global__ void id_map_settle(Slot* slots, const long long* __restrict__ tags,
                                         long long tag_stride, const long long* __restrict__ first,
                                         const long long* __restrict__ positions,
                                         const long long* __restrict__ slot_of,
                                         const long long* __restrict__ new_rows, long long count,
                                         long long n, long long* __restrict__ rows) {
    for_each_index(n, [&](long long i) {
        const long long rank = first[i];
        if (rank >= 0) {
            rows[i] = new_rows[rank];
        }
        if (i < count && new_rows[i] >= 0) {
            const long long position = positions[i];
            slots[slot_of[position]].packed = pack(tags[position * tag_stride], new_rows[i]);
        }
    });
}

// Erase, phase 1: out[i] = former row of (keys[i], tag) or -1; a found entry is marked dead by
// negating its packed word, and dead_slot[i] = its slot (else -1). Keys should be distinct; a
// repeated key is erased once and its other occurrences get -1.
extern "C" __global__ void id_map_erase_mark(Slot* slots, long long mask, int shift,
                                             const long long* __restrict__ keys,
                                             const long long* __restrict__ tags,
                                             long long tag_stride, long long n,
                                             long long* __restrict__ out,
                                             long long* __restrict__ dead_slot) {
    for_each_index(n, [&](long long i) {
        const long long key = keys[i];
        const long long tag = tags[i * tag_stride];
        long long s = home_slot(key, tag, shift);
        out[i] = -1;
        dead_slot[i] = -1;
        while (true) {
            long long* packed_at = &slots[s].packed;
            const long long packed = recis::load_volatile(packed_at);
            if (packed == 0) {
                return;
            }
            const long long live = packed < 0 ? -packed : packed;
            if (slots[s].key == key && tag_of(live) == tag) {
                if (packed > 0 && recis::atomic_cas(packed_at, packed, -packed) == packed) {
                    out[i] = row_of(packed);
                    dead_slot[i] = s;
                }
                return;
            }
            s = (s + 1) & mask;
        }
    });
}

// Erase, phase 2: for the first dead slot of each cluster (a maximal run of non-empty slots),
// cluster_start[i] = the cluster's first slot; -1 for every other i.
extern "C" __global__ void id_map_erase_clusters(const Slot* __restrict__ slots, long long mask,
                                                 const long long* __restrict__ dead_slot,
                                                 long long n,
                                                 long long* __restrict__ cluster_start) {
    for_each_index(n, [&](long long i) {
        cluster_start[i] = -1;
        const long long dead = dead_slot[i];
        if (dead < 0) {
            return;
        }
        long long s = (dead - 1) & mask;
        while (slots[s].packed != 0) {
            if (slots[s].packed < 0) {
                return;  // an earlier dead slot of this cluster owns it
            }
            s = (s - 1) & mask;
        }
        cluster_start[i] = (s + 1) & mask;
    });
}

// Erase, phase 3: one thread per cluster removes its dead entries by backward shifting. Clusters
// are disjoint and only shrink, so threads never touch each other's slots.
extern "C" __global__ void id_map_erase_compact(Slot* slots, long long mask, int shift,
                                                const long long* __restrict__ cluster_start,
                                                long long n) {
    for_each_index(n, [&](long long i) {
        const long long start = cluster_start[i];
        if (start < 0) {
            return;
        }
        long long end = start;
        while (slots[end].packed != 0) {
            end = (end + 1) & mask;
        }
        long long s = start;
        while (s != end) {
            if (slots[s].packed < 0) {
                shift_back(slots, mask, shift, s);  // s now holds a moved entry, or nothing
            } else {
                s = (s + 1) & mask;
            }
        }
    });
}

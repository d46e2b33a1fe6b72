// Device helpers shared by every RecIS kernel.
//
// Kernels are `extern "C" __global__` grid-stride loops over `n` items (launched by
// recis.core.cuda.loader.launch). Keys are `long long`; hashes use unsigned 64-bit arithmetic so
// that overflow wraps exactly as in the CPU kernels (recis/core/kernels/id_map.py).
//
// Hash-table slots: `Slot{key, packed}` pairs (an int64[capacity, 2] array), capacity a power of
// two. `packed = 1 + (tag << ROW_BITS) + row` for a settled entry, 0 for an empty slot. The home
// slot of (key, tag) is the top bits of hash_key(key ^ tag_salt(tag)).
#pragma once

namespace recis {

constexpr int ROW_BITS = 48;
constexpr long long ROW_MASK = (1LL << ROW_BITS) - 1;
constexpr unsigned long long GOLDEN = 0x9E3779B97F4A7C15ULL;

// Marks a slot whose claimant has not yet written the key; never a valid packed word, since
// |packed| <= 2**63 - 1 for every (tag < 2**15, row or position < 2**48).
constexpr long long CLAIMING = (long long)(1ULL << 63);

struct alignas(16) Slot {
    long long key;
    long long packed;
};

// MurmurHash3's 64-bit finalizer.
__device__ __forceinline__ unsigned long long hash_key(unsigned long long h) {
    h ^= h >> 33;
    h *= 0xFF51AFD7ED558CCDULL;
    h ^= h >> 33;
    h *= 0xC4CEB9FE1A85EC53ULL;
    h ^= h >> 33;
    return h;
}

__device__ __forceinline__ unsigned long long tag_salt(long long tag) {
    return (unsigned long long)tag * GOLDEN;
}

// Slot where probing for (key, tag) starts; `shift` = 64 - log2(capacity).
__device__ __forceinline__ long long home_slot(long long key, long long tag, int shift) {
    return (long long)(hash_key((unsigned long long)key ^ tag_salt(tag)) >> shift);
}

__device__ __forceinline__ long long pack(long long tag, long long row) {
    return 1 + (tag << ROW_BITS) + row;
}

__device__ __forceinline__ long long tag_of(long long packed) {
    return (packed - 1) >> ROW_BITS;
}

__device__ __forceinline__ long long row_of(long long packed) {
    return (packed - 1) & ROW_MASK;
}

// Loads and stores of words other threads of the same kernel may write: they bypass the
// (non-coherent) L1 cache. A claimant publishes a slot's packed word with store_release after
// writing its key; a reader that load_acquire's that word may then read the key.
__device__ __forceinline__ long long load_volatile(const long long* p) {
    return *(const volatile long long*)p;
}

__device__ __forceinline__ void store_volatile(long long* p, long long value) {
    *(volatile long long*)p = value;
}

__device__ __forceinline__ long long load_acquire(const long long* p) {
#if defined(__CUDA_ARCH__)
    long long value;
    asm volatile("ld.acquire.gpu.b64 %0, [%1];" : "=l"(value) : "l"(p) : "memory");
    return value;
#else  // the tests' host build, whose threads run one after another
    return *p;
#endif
}

__device__ __forceinline__ void store_release(long long* p, long long value) {
#if defined(__CUDA_ARCH__)
    asm volatile("st.release.gpu.b64 [%0], %1;" ::"l"(p), "l"(value) : "memory");
#else
    *p = value;
#endif
}

__device__ __forceinline__ long long atomic_cas(long long* p, long long expected, long long value) {
    return (long long)atomicCAS((unsigned long long*)p, (unsigned long long)expected,
                                (unsigned long long)value);
}

// Finds or claims the slot of (key, tag) in a first-position scratch table (slots hold
// pack(tag, p), p the smallest position seen of the pair) for position i, keeps the smaller
// position, and returns the slot. The table must have room for every pair.
__device__ __forceinline__ long long claim_first_position(Slot* scratch, long long mask,
                                                          int shift, long long key, long long tag,
                                                          long long i) {
    const long long mine = pack(tag, i);
    long long s = home_slot(key, tag, shift);
    while (true) {
        long long* packed_at = &scratch[s].packed;
        long long packed = load_acquire(packed_at);
        if (packed == 0) {
            if (atomic_cas(packed_at, 0, CLAIMING) == 0) {
                store_volatile(&scratch[s].key, key);
                store_release(packed_at, mine);
                return s;
            }
            packed = CLAIMING;  // lost the race: wait for the winner's key
        }
        while (packed == CLAIMING) {  // the acquiring load orders the key read after it
            packed = load_acquire(packed_at);
        }
        if (load_volatile(&scratch[s].key) == key && tag_of(packed) == tag) {
            if (row_of(packed) > i) {  // only a smaller position can change the minimum
                atomicMin(packed_at, mine);
            }
            return s;
        }
        s = (s + 1) & mask;
    }
}

// Calls f(i) for every i in [0, n), spread over the whole grid.
template <typename F>
__device__ __forceinline__ void for_each_index(long long n, F f) {
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        f(i);
    }
}

}  // namespace recis

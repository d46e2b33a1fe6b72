// Stable sort of small non-negative int64 keys without waiting for the host: a least significant
// digit radix sort, 8 bits a pass (recis/core/cuda/sort.py), with no Thrust and no atomics in the
// placement, so the order is the same on every run and on the CPU.
//
// A pass reads the keys in the order of the previous pass. Items are cut into tiles of TILE
// consecutive items; a tile's items of one digit keep their order, and the tiles theirs:
//   radix_digits       digits[i] = the pass's digit of the i-th item
//   radix_tile_counts  counts[d * tiles + t] = items of tile t with digit d (counts zeroed)
//   (an exclusive prefix sum of counts, digit-major, gives each (digit, tile) its first place)
//   radix_scatter      each item goes to its (digit, tile)'s first place plus its rank among the
//                      items of its tile with the same digit
// The kernels use the grid-stride loop of feature_support.cuh.
#include "feature_support.cuh"

using recis::features::i64;
using recis::features::u64;

namespace {

constexpr i64 TILE = 256;
constexpr u64 DIGIT_MASK = 255;

__device__ __forceinline__ void count_one(i64* counter) {
  atomicAdd(reinterpret_cast<unsigned long long*>(counter), 1ULL);
}

}  // namespace

// digits[i] = bits [shift, shift + 8) of keys[order[i]].
RECIS_KERNEL radix_digits(i64 n, const i64* keys, const i64* order, i64 shift,
                          unsigned char* digits) {
  RECIS_FOR_EACH_ITEM(i, n) {
    digits[i] = static_cast<unsigned char>((static_cast<u64>(keys[order[i]]) >> shift) & DIGIT_MASK);
  }
}

// counts[d * tiles + t] += the items of tile t whose digit is d.
RECIS_KERNEL radix_tile_counts(i64 n, const unsigned char* digits, i64 tiles, i64* counts) {
  RECIS_FOR_EACH_ITEM(i, n) { count_one(&counts[digits[i] * tiles + i / TILE]); }
}

// out[starts[d * tiles + t] + rank] = order[i], for item i of tile t with digit d and `rank`
// earlier items of that tile with digit d.
RECIS_KERNEL radix_scatter(i64 n, const unsigned char* digits, const i64* order,
                           const i64* starts, i64 tiles, i64* out) {
  RECIS_FOR_EACH_ITEM(i, n) {
    const unsigned char digit = digits[i];
    i64 rank = 0;
    for (i64 j = i - i % TILE; j < i; ++j) {
      rank += digits[j] == digit;
    }
    out[starts[digit * tiles + i / TILE] + rank] = order[i];
  }
}

// Grouping of small keys (row indices in [0, num_rows)) by counting instead of sorting: every
// item of each key, in item order, between begin[key] and end[key] of `order`. Items whose key is
// out of range are left out. Three kernels around an inclusive prefix sum of the counts:
//   group_slots  slot[i] = the item's place among its key's items (atomics: any order); counts
//                zeroed first
//   (end = inclusive prefix sum of counts)
//   group_place  order[end[k] - counts[k] + slot[i]] = i, and begin[k] = end[k] - counts[k]
//   group_sort   each key's items sorted by item number (a shell sort per key), so the order is
//                the CPU's stable one whatever order the atomics took
RECIS_KERNEL group_slots(const i64* keys, i64 n, i64 num_keys, i64* counts, i64* slot) {
  RECIS_FOR_EACH_ITEM(i, n) {
    const i64 k = keys[i];
    slot[i] = (0 <= k && k < num_keys)
                  ? static_cast<i64>(atomicAdd(reinterpret_cast<u64*>(&counts[k]), 1ULL))
                  : -1;
  }
}

RECIS_KERNEL group_place(const i64* keys, const i64* slot, i64 n, i64 num_keys,
                         const i64* counts, const i64* end, i64* order, i64* begin) {
  RECIS_FOR_EACH_ITEM(t, n > num_keys ? n : num_keys) {
    if (t < n && slot[t] >= 0) {
      const i64 k = keys[t];
      order[end[k] - counts[k] + slot[t]] = t;
    }
    if (t < num_keys) begin[t] = end[t] - counts[t];
  }
}

RECIS_KERNEL group_sort(i64* order, const i64* begin, const i64* end, i64 num_keys) {
  const i64 gaps[] = {701, 301, 132, 57, 23, 10, 4, 1};  // Ciura's gaps
  RECIS_FOR_EACH_ITEM(k, num_keys) {
    i64* items = order + begin[k];
    const i64 size = end[k] - begin[k];
    for (i64 gap : gaps) {
      for (i64 i = gap; i < size; ++i) {
        const i64 item = items[i];
        i64 j = i;
        for (; j >= gap && items[j - gap] > item; j -= gap) items[j] = items[j - gap];
        items[j] = item;
      }
    }
  }
}

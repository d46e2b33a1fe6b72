// Value-wise feature ops, identical to the CPU kernels (recis.core.kernels.feature_ops): unsigned
// modulo by an invariant divisor, upper-bound bucketize and the id multi-hash.
#pragma once

#include "feature_support.cuh"

namespace recis::features {

// n % divisor for uint64 n, through Granlund and Montgomery's magic number and shift
// (recis.core.kernels.feature_ops.modulo_magic); any magic works for the divisor 1.
RECIS_FN u64 unsigned_mod(u64 n, u64 divisor, u64 magic, u64 shift) {
  if (divisor == 1) return 0;
  const u64 high = multiply_high(magic, n);
  const u64 quotient = (high + ((n - high) >> 1)) >> shift;
  return n - quotient * divisor;
}

// How many of the sorted edges[0, count) are <= value, after promoting value to double (C++'s
// std::upper_bound position; NaN lands after every edge).
template <typename V>
RECIS_FN i64 upper_bound_position(V value, const double* edges, i64 count) {
  const double x = (double)value;
  i64 low = 0, high = count;
  while (low < high) {
    const i64 middle = low + ((high - low) >> 1);
    if (x < edges[middle]) {
      high = middle;
    } else {
      low = middle + 1;
    }
  }
  return low;
}

// ((id * multiplier) mod prime) mod bucket: the product wraps modulo 2^64, mod is the floor
// modulo (prime and bucket are positive).
RECIS_FN i64 multi_hash(i64 id, i64 multiplier, i64 prime, i64 bucket) {
  const i64 product = (i64)((u64)id * (u64)multiplier);
  return floor_mod(floor_mod(product, prime), bucket);
}

}  // namespace recis::features

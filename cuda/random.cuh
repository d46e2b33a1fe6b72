// Counter-based random numbers on the GPU: the exact arithmetic of recis.core.kernels.random.
//
// Element j of the row of an id depends only on (seed, table hash, id, j): the integer bits equal
// the CPU's bit for bit. Floats are IEEE doubles with every operation rounded separately; the
// explicit __d*_rn intrinsics keep the compiler from fusing a multiply and an add, which would
// change the result. log and cos come from the CUDA math library (within 2 ulp in double), so a
// float32 result equals the CPU's or is its neighbour.
#pragma once

namespace recis_random {

constexpr unsigned long long kGoldenGamma = 0x9E3779B97F4A7C15ull;
constexpr double kTwoPi = 0x1.921fb54442d18p+2;  // the double nearest 2*pi
constexpr double kTwoPowMinus53 = 0x1.0p-53;
constexpr int kTruncatedNormalAttempts = 64;

// SplitMix64's finalizer: a bijection of the 64-bit integers with full avalanche.
__host__ __device__ __forceinline__ unsigned long long mix64(unsigned long long x) {
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// The key of an id in a (seed, table) stream: the id's two's-complement bits mixed into it.
__host__ __device__ __forceinline__ unsigned long long row_key(unsigned long long stream,
                                                               long long id) {
  return mix64(stream ^ static_cast<unsigned long long>(id));
}

// Random bits of element `element`, attempt `attempt`, lane 0 or 1 of a row key.
__host__ __device__ __forceinline__ unsigned long long draw_bits(unsigned long long key,
                                                                 unsigned long long element,
                                                                 unsigned long long attempt,
                                                                 unsigned long long lane) {
  const unsigned long long counter = (attempt << 33) | (element << 1) | lane;
  return mix64(key + (counter + 1ull) * kGoldenGamma);
}

// The top 53 bits as a double in [0, 1).
__device__ __forceinline__ double uniform01(unsigned long long bits) {
  return __dmul_rn(__ull2double_rn(bits >> 11), kTwoPowMinus53);
}

// The top 53 bits plus one as a double in (0, 1]: a logarithm never sees 0.
__device__ __forceinline__ double positive01(unsigned long long bits) {
  return __dmul_rn(__ull2double_rn((bits >> 11) + 1ull), kTwoPowMinus53);
}

// Box-Muller with one pair of draws per element, keeping the cosine branch.
__device__ __forceinline__ double standard_normal(unsigned long long key,
                                                  unsigned long long element,
                                                  unsigned long long attempt) {
  const double radius = sqrt(__dmul_rn(-2.0, log(positive01(draw_bits(key, element, attempt, 0)))));
  const double angle = __dmul_rn(kTwoPi, uniform01(draw_bits(key, element, attempt, 1)));
  return __dmul_rn(radius, cos(angle));
}

// low + (high - low) * u
__device__ __forceinline__ double uniform_value(unsigned long long key, unsigned long long element,
                                                double low, double high) {
  return __dadd_rn(low, __dmul_rn(__dsub_rn(high, low), uniform01(draw_bits(key, element, 0, 0))));
}

// mean + std * z
__device__ __forceinline__ double normal_value(unsigned long long key, unsigned long long element,
                                               unsigned long long attempt, double mean,
                                               double std) {
  return __dadd_rn(mean, __dmul_rn(std, standard_normal(key, element, attempt)));
}

// The first normal(mean, std) draw within [a, b]; after every attempt failed, the last one clipped.
__device__ __forceinline__ double truncated_normal_value(unsigned long long key,
                                                         unsigned long long element, double mean,
                                                         double std, double a, double b) {
  double x = 0.0;
  for (int attempt = 0; attempt < kTruncatedNormalAttempts; ++attempt) {
    x = normal_value(key, element, static_cast<unsigned long long>(attempt), mean, std);
    if (a <= x && x <= b) return x;
  }
  // min(max(x, a), b) with Python's semantics: a NaN x stays NaN.
  if (x < a) x = a;
  if (x > b) x = b;
  return x;
}

}  // namespace recis_random

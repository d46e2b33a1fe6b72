// Counter-based random numbers on the GPU: the exact arithmetic of recis.core.kernels.random.
//
// Element j of the row of an id depends only on (seed, table hash, id, j), and equals the CPU's
// bit for bit: the integer bits are the same, and the floats are float32 computed with only
// + - * / and sqrt, each rounded to nearest separately without flushing subnormals
// (recis_rows::fadd and its kin), in the order of the CPU module's spec.
#pragma once

#include "row_blocks.cuh"

namespace recis_random {

using recis_rows::fadd;
using recis_rows::fdiv;
using recis_rows::fmul;
using recis_rows::fsub;

constexpr unsigned long long kGoldenGamma = 0x9E3779B97F4A7C15ull;
constexpr int kTruncatedNormalAttempts = 64;

// The spec's float32 constants (recis.core.kernels.random.constants(), compared by a test).
constexpr float STEP = 0x1.921fb6p-22f;
constexpr float SQRT_HALF = 0x1.6a09e6p-1f;
constexpr float LN2_HI = 0x1.62e400p-1f;
constexpr float LN2_LO = 0x1.7f7d1cp-20f;
constexpr float TWO_POW_MINUS_24 = 0x1.000000p-24f;
constexpr float LOG3 = 0x1.555556p-2f;
constexpr float LOG5 = 0x1.99999ap-3f;
constexpr float LOG7 = 0x1.24924ap-3f;
constexpr float LOG9 = 0x1.c71c72p-4f;
constexpr float COS2 = -0x1.000000p-1f;
constexpr float COS4 = 0x1.555556p-5f;
constexpr float COS6 = -0x1.6c16c2p-10f;
constexpr float COS8 = 0x1.a01a02p-16f;
constexpr float COS10 = -0x1.27e4fcp-22f;
constexpr float SIN3 = -0x1.555556p-3f;
constexpr float SIN5 = 0x1.111112p-7f;
constexpr float SIN7 = -0x1.a01a02p-13f;
constexpr float SIN9 = 0x1.71de3ap-19f;
constexpr float SIN11 = -0x1.ae6456p-26f;

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

// The top 24 bits, as an integer below 2**24 (exact in float32).
__device__ __forceinline__ unsigned int top24(unsigned long long bits) {
  return static_cast<unsigned int>(bits >> 40);
}

// The top 24 bits as a float in [0, 1).
__device__ __forceinline__ float uniform01(unsigned long long bits) {
  return fmul(static_cast<float>(top24(bits)), TWO_POW_MINUS_24);
}

// ln(x) for a normal float32 x > 0 (the spec's `ln`).
__device__ __forceinline__ float ln(float x) {
  const unsigned int word = __float_as_uint(x);
  float e = static_cast<float>(static_cast<int>((word >> 23) & 0xFFu) - 126);
  float m = __uint_as_float((word & 0x807FFFFFu) | (126u << 23));  // frexp: x = m * 2**e
  if (m < SQRT_HALF) {
    m = fmul(m, 2.0f);
    e = fsub(e, 1.0f);
  }
  const float f = fsub(m, 1.0f);
  const float s = fdiv(f, fadd(f, 2.0f));
  const float z = fmul(s, s);
  const float t = fmul(2.0f, s);
  const float p = fmul(z, fadd(LOG3, fmul(z, fadd(LOG5, fmul(z, fadd(LOG7, fmul(z, LOG9)))))));
  return fadd(fmul(e, LN2_HI), fadd(fmul(e, LN2_LO), fadd(t, fmul(t, p))));
}

__device__ __forceinline__ float cos_poly(float a) {
  const float z = fmul(a, a);
  const float p = fadd(COS8, fmul(z, COS10));
  return fadd(1.0f, fmul(z, fadd(COS2, fmul(z, fadd(COS4, fmul(z, fadd(COS6, fmul(z, p))))))));
}

__device__ __forceinline__ float sin_poly(float a) {
  const float z = fmul(a, a);
  const float p = fadd(SIN9, fmul(z, SIN11));
  const float q = fadd(SIN3, fmul(z, fadd(SIN5, fmul(z, fadd(SIN7, fmul(z, p))))));
  return fadd(a, fmul(fmul(a, z), q));
}

// cos(2*pi*j / 2**24) for a 24-bit j (the spec's `cos_turns`).
__device__ __forceinline__ float cos_turns(unsigned int j) {
  const unsigned int quadrant = j >> 22, r = j & ((1u << 22) - 1u);
  float c, s;
  if (r <= (1u << 19)) {
    const float a = fmul(static_cast<float>(r), STEP);
    c = cos_poly(a);
    s = sin_poly(a);
  } else {
    const float a = fmul(static_cast<float>((1u << 22) - r), STEP);
    c = sin_poly(a);
    s = cos_poly(a);
  }
  switch (quadrant) {
    case 0: return c;
    case 1: return -s;
    case 2: return -c;
    default: return s;
  }
}

// Box-Muller with one pair of draws per element, keeping the cosine branch.
__device__ __forceinline__ float standard_normal(unsigned long long key,
                                                 unsigned long long element,
                                                 unsigned long long attempt) {
  const float positive =
      fmul(static_cast<float>(top24(draw_bits(key, element, attempt, 0)) + 1u), TWO_POW_MINUS_24);
  const float radius = recis_rows::fsqrt(fmul(-2.0f, ln(positive)));
  return fmul(radius, cos_turns(top24(draw_bits(key, element, attempt, 1))));
}

// low + (high - low) * u
__device__ __forceinline__ float uniform_value(unsigned long long key, unsigned long long element,
                                               float low, float high) {
  return fadd(low, fmul(fsub(high, low), uniform01(draw_bits(key, element, 0, 0))));
}

// mean + std * z
__device__ __forceinline__ float normal_value(unsigned long long key, unsigned long long element,
                                              unsigned long long attempt, float mean, float std) {
  return fadd(mean, fmul(std, standard_normal(key, element, attempt)));
}

// The first normal(mean, std) draw within [a, b]; after every attempt failed, the last one clipped.
__device__ __forceinline__ float truncated_normal_value(unsigned long long key,
                                                        unsigned long long element, float mean,
                                                        float std, float a, float b) {
  float x = mean;
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

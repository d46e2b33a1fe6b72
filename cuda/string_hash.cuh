// 64-bit string hashes, bit-identical to the engine's CPU kernels (recis.core.kernels.string_hash):
// farmhash Fingerprint64 and MurmurHash64A with seed 0, over bytes read little-endian from any
// position, and MurmurHash64A of a 16-byte pair of int64 ids (the feature cross). All arithmetic
// is on unsigned 64-bit words and wraps modulo 2^64.
#pragma once

#include "feature_support.cuh"

namespace recis::hashing {

using recis::features::u64;

constexpr u64 kFarm0 = 0xC3A5C85C97CB3127ULL;
constexpr u64 kFarm1 = 0xB492B66FBE98F273ULL;
constexpr u64 kFarm2 = 0x9AE16A3B2F90404FULL;
constexpr u64 kFarmSeed = 81ULL;
constexpr u64 kMurmurM = 0xC6A4A7935BD1E995ULL;
constexpr int kMurmurR = 47;

// Little-endian words at any byte position (no alignment needed).
RECIS_FN u64 fetch64(const unsigned char* p) {
  u64 word = 0;
  for (int k = 0; k < 8; ++k) word |= (u64)p[k] << (8 * k);
  return word;
}

RECIS_FN u64 fetch32(const unsigned char* p) {
  u64 word = 0;
  for (int k = 0; k < 4; ++k) word |= (u64)p[k] << (8 * k);
  return word;
}

// Rotate right by 0 < shift < 64 bits.
RECIS_FN u64 rotate(u64 value, int shift) { return (value >> shift) | (value << (64 - shift)); }

RECIS_FN u64 shift_mix(u64 value) { return value ^ (value >> 47); }

RECIS_FN u64 hash_len16(u64 u, u64 v, u64 mul) {
  u64 a = shift_mix((u ^ v) * mul);
  u64 b = shift_mix((v ^ a) * mul);
  return b * mul;
}

RECIS_FN u64 farm_len0to16(const unsigned char* s, u64 n) {
  if (n >= 8) {
    u64 mul = kFarm2 + n * 2;
    u64 a = fetch64(s) + kFarm2;
    u64 b = fetch64(s + n - 8);
    u64 c = rotate(b, 37) * mul + a;
    u64 d = (rotate(a, 25) + b) * mul;
    return hash_len16(c, d, mul);
  }
  if (n >= 4) {
    u64 mul = kFarm2 + n * 2;
    return hash_len16(n + (fetch32(s) << 3), fetch32(s + n - 4), mul);
  }
  if (n > 0) {
    u64 y = (u64)s[0] + ((u64)s[n >> 1] << 8);
    u64 z = n + ((u64)s[n - 1] << 2);
    return shift_mix((y * kFarm2) ^ (z * kFarm0)) * kFarm2;
  }
  return kFarm2;
}

RECIS_FN u64 farm_len17to32(const unsigned char* s, u64 n) {
  u64 mul = kFarm2 + n * 2;
  u64 a = fetch64(s) * kFarm1;
  u64 b = fetch64(s + 8);
  u64 c = fetch64(s + n - 8) * mul;
  u64 d = fetch64(s + n - 16) * kFarm2;
  return hash_len16(rotate(a + b, 43) + rotate(c, 30) + d, a + rotate(b + kFarm2, 18) + c, mul);
}

RECIS_FN u64 farm_len33to64(const unsigned char* s, u64 n) {
  u64 mul = kFarm2 + n * 2;
  u64 a = fetch64(s) * kFarm2;
  u64 b = fetch64(s + 8);
  u64 c = fetch64(s + n - 8) * mul;
  u64 d = fetch64(s + n - 16) * kFarm2;
  u64 y = rotate(a + b, 43) + rotate(c, 30) + d;
  u64 z = hash_len16(y, a + rotate(b + kFarm2, 18) + c, mul);
  u64 e = fetch64(s + 16) * mul;
  u64 f = fetch64(s + 24);
  u64 g = (y + fetch64(s + n - 32)) * mul;
  u64 h = (z + fetch64(s + n - 24)) * mul;
  return hash_len16(rotate(e + f, 43) + rotate(g, 30) + h, e + rotate(f + a, 18) + g, mul);
}

// farmhash's WeakHashLen32WithSeeds over the 32 bytes at s: a pair of words.
RECIS_FN void weak_hash_len32(const unsigned char* s, u64 a, u64 b, u64& first, u64& second) {
  u64 w = fetch64(s), x = fetch64(s + 8), y = fetch64(s + 16), z = fetch64(s + 24);
  a += w;
  b = rotate(b + a + z, 21);
  u64 c = a;
  a += x;
  a += y;
  b += rotate(a, 44);
  first = a + z;
  second = b + c;
}

// The state of the long-string loop.
struct FarmState {
  u64 x, y, z, v0, v1, w0, w1;
};

// One 64-byte block at s of the long-string loop (scale is 9 for the last block).
RECIS_FN void farm_block(const unsigned char* s, FarmState& t, u64 mul, u64 scale) {
  t.x = rotate(t.x + t.y + t.v0 + fetch64(s + 8), 37) * mul;
  t.y = rotate(t.y + t.v1 + fetch64(s + 48), 42) * mul;
  t.x ^= t.w1 * scale;
  t.y += t.v0 * scale + fetch64(s + 40);
  t.z = rotate(t.z + t.w0, 33) * mul;
  weak_hash_len32(s, t.v1 * mul, t.x + t.w0, t.v0, t.v1);
  weak_hash_len32(s + 32, t.z + t.w1, t.y + fetch64(s + 16), t.w0, t.w1);
  u64 swap = t.z;
  t.z = t.x;
  t.x = swap;
}

// Fingerprint64 of more than 64 bytes: 64-byte blocks, then the last 64 bytes.
RECIS_FN u64 farm_long(const unsigned char* s, u64 n) {
  FarmState t;
  t.y = kFarmSeed * kFarm1 + 113;
  t.z = shift_mix(t.y * kFarm2 + 113) * kFarm2;
  t.x = kFarmSeed * kFarm2 + fetch64(s);
  t.v0 = t.v1 = t.w0 = t.w1 = 0;
  const u64 blocks_end = (n - 1) / 64 * 64;
  for (u64 offset = 0; offset < blocks_end; offset += 64) farm_block(s + offset, t, kFarm1, 1);
  u64 mul = kFarm1 + ((t.z & 0xFF) << 1);
  t.w0 += (n - 1) & 63;
  t.v0 += t.w0;
  t.w0 += t.v0;
  farm_block(s + n - 64, t, mul, 9);
  u64 first = hash_len16(t.v0, t.w0, mul) + shift_mix(t.y) * kFarm0 + t.z;
  return hash_len16(first, hash_len16(t.v1, t.w1, mul) + t.x, mul);
}

// farmhash Fingerprint64 of the n bytes at s.
RECIS_FN u64 farm_fingerprint64(const unsigned char* s, u64 n) {
  if (n <= 16) return farm_len0to16(s, n);
  if (n <= 32) return farm_len17to32(s, n);
  if (n <= 64) return farm_len33to64(s, n);
  return farm_long(s, n);
}

RECIS_FN u64 murmur_mix(u64 k) {
  k *= kMurmurM;
  k ^= k >> kMurmurR;
  return k * kMurmurM;
}

RECIS_FN u64 murmur_finish(u64 h) {
  h ^= h >> kMurmurR;
  h *= kMurmurM;
  return h ^ (h >> kMurmurR);
}

// MurmurHash64A (seed 0) of the n bytes at s.
RECIS_FN u64 murmur_hash64a(const unsigned char* s, u64 n) {
  u64 h = n * kMurmurM;
  const u64 body = n - (n & 7);
  for (u64 i = 0; i < body; i += 8) h = (h ^ murmur_mix(fetch64(s + i))) * kMurmurM;
  const u64 tail = n & 7;
  if (tail) {
    for (u64 k = 0; k < tail; ++k) h ^= (u64)s[body + k] << (8 * k);
    h *= kMurmurM;
  }
  return murmur_finish(h);
}

// MurmurHash64A (seed 0) of the 16 bytes of (x, y), each an int64 in little-endian order.
RECIS_FN u64 murmur_pair(u64 x, u64 y) {
  u64 h = 16 * kMurmurM;
  h = (h ^ murmur_mix(x)) * kMurmurM;
  h = (h ^ murmur_mix(y)) * kMurmurM;
  return murmur_finish(h);
}

}  // namespace recis::hashing

// The CUDA builtins the engine's kernels use, for building cuda/*.cu as plain C++ on the host
// (tests/host_cuda.py force-includes this header). A launch runs the grid's blocks and threads one
// after another, last to first, each thread running its whole grid-stride loop; so atomics are
// plain read-modify-writes, fences do nothing, and a kernel whose threads would wait for each
// other (barriers, spinning on another thread's later write) cannot be built this way. Races,
// memory ordering and flush-to-zero are not modelled: float operations round as IEEE requires
// (the build turns off contraction into fused multiply-adds).
#pragma once

#include <math.h>
#include <string.h>

#define RECIS_HOST_SHIM 1
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline

struct recis_host_dim3 {
  unsigned int x, y, z;
};

inline thread_local recis_host_dim3 threadIdx{0, 0, 0};
inline thread_local recis_host_dim3 blockIdx{0, 0, 0};
inline thread_local recis_host_dim3 blockDim{1, 1, 1};
inline thread_local recis_host_dim3 gridDim{1, 1, 1};

struct alignas(16) uint4 {
  unsigned int x, y, z, w;
};

inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }

inline unsigned long long atomicCAS(unsigned long long* p, unsigned long long expected,
                                    unsigned long long value) {
  const unsigned long long old = *p;
  if (old == expected) *p = value;
  return old;
}

inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long value) {
  const unsigned long long old = *p;
  *p = old + value;
  return old;
}

inline long long atomicMin(long long* p, long long value) {
  const long long old = *p;
  if (value < old) *p = value;
  return old;
}

inline long long atomicMax(long long* p, long long value) {
  const long long old = *p;
  if (value > old) *p = value;
  return old;
}

inline void __threadfence() {}
inline void __threadfence_system() {}

template <class To, class From>
inline To recis_host_bits(From value) {
  To out;
  memcpy(&out, &value, sizeof(out));
  return out;
}

inline float __int_as_float(int bits) { return recis_host_bits<float>(bits); }
inline float __uint_as_float(unsigned int bits) { return recis_host_bits<float>(bits); }
inline unsigned int __float_as_uint(float value) { return recis_host_bits<unsigned int>(value); }

inline float __double2float_rn(double value) { return static_cast<float>(value); }
inline double __ull2double_rn(unsigned long long value) { return static_cast<double>(value); }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dsub_rn(double a, double b) { return a - b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fsqrt_rn(float a) { return sqrtf(a); }

// Helpers of the row-storage and sparse-math kernels: grid-stride loops, rows in block storage,
// and the float32 conversions of the storage dtypes (float16 and bfloat16 as raw 16-bit words).
#pragma once

namespace recis_rows {

// Grid-stride loops: `for (long long t = first_item(); t < n; t += item_stride())`.
__device__ __forceinline__ long long first_item() {
  return static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
}

__device__ __forceinline__ long long item_stride() {
  return static_cast<long long>(gridDim.x) * blockDim.x;
}

// One field of a row store: `blocks[b]` is the device address of block b, a C-contiguous
// [block_rows, width] array; row r is row (r & (block_rows - 1)) of block r >> log2_block_rows.
// Rows outside [0, capacity) are not stored.
struct BlockRows {
  const unsigned long long* blocks;
  long long log2_block_rows;
  long long capacity;

  __device__ __forceinline__ bool holds(long long row) const {
    return 0 <= row && row < capacity;
  }

  // The first of the `width` elements of type T of a row the store holds.
  template <class T>
  __device__ __forceinline__ T* row(long long row_number, long long width) const {
    const long long offset = row_number & ((1ll << log2_block_rows) - 1);
    return reinterpret_cast<T*>(blocks[row_number >> log2_block_rows]) + offset * width;
  }
};

// Storage words of the 16-bit float formats.
struct HalfBits {
  unsigned short bits;
};

struct BFloat16Bits {
  unsigned short bits;
};

// float32 arithmetic rounded to nearest even that keeps subnormal inputs and results, as the CPU
// twins do, whatever the compiler's flush-to-zero setting (CuPy compiles with -ftz=true, see
// recis/core/cuda/loader.py): explicit PTX without the .ftz modifier, never fused into an FMA.
#if defined(__CUDA_ARCH__)
#define RECIS_PTX_BINARY(NAME, OP)                                           \
  __device__ __forceinline__ float NAME(float a, float b) {                  \
    float result;                                                            \
    asm(OP ".rn.f32 %0, %1, %2;" : "=f"(result) : "f"(a), "f"(b));          \
    return result;                                                           \
  }
RECIS_PTX_BINARY(fadd, "add")
RECIS_PTX_BINARY(fsub, "sub")
RECIS_PTX_BINARY(fmul, "mul")
RECIS_PTX_BINARY(fdiv, "div")
#undef RECIS_PTX_BINARY

__device__ __forceinline__ float fsqrt(float a) {
  float result;
  asm("sqrt.rn.f32 %0, %1;" : "=f"(result) : "f"(a));
  return result;
}

__device__ __forceinline__ float to_float(double value) {
  float result;
  asm("cvt.rn.f32.f64 %0, %1;" : "=f"(result) : "d"(value));
  return result;
}
#else  // the tests' host build: IEEE arithmetic, contraction turned off
__device__ __forceinline__ float fadd(float a, float b) { return a + b; }
__device__ __forceinline__ float fsub(float a, float b) { return a - b; }
__device__ __forceinline__ float fmul(float a, float b) { return a * b; }
__device__ __forceinline__ float fdiv(float a, float b) { return a / b; }
__device__ __forceinline__ float fsqrt(float a) { return sqrtf(a); }
__device__ __forceinline__ float to_float(double value) { return static_cast<float>(value); }
#endif

__device__ __forceinline__ float to_float(float value) { return value; }

__device__ __forceinline__ float to_float(HalfBits value) {
#if defined(__CUDA_ARCH__)
  float result;
  asm("cvt.f32.f16 %0, %1;" : "=f"(result) : "h"(value.bits));
  return result;
#else
  _Float16 half;
  memcpy(&half, &value.bits, sizeof(half));
  return static_cast<float>(half);
#endif
}

__device__ __forceinline__ float to_float(BFloat16Bits value) {
  return __uint_as_float(static_cast<unsigned int>(value.bits) << 16);
}

template <class T>
__device__ __forceinline__ T from_float(float value);

template <>
__device__ __forceinline__ float from_float<float>(float value) {
  return value;
}

// Round to nearest, ties to even; NaN stays NaN.
template <>
__device__ __forceinline__ HalfBits from_float<HalfBits>(float value) {
  HalfBits result;
#if defined(__CUDA_ARCH__)
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(result.bits) : "f"(value));
#else
  const _Float16 half = static_cast<_Float16>(value);
  memcpy(&result.bits, &half, sizeof(half));
#endif
  return result;
}

// Round to nearest, ties to even, as ml_dtypes' bfloat16; a NaN becomes the quiet NaN of its sign.
template <>
__device__ __forceinline__ BFloat16Bits from_float<BFloat16Bits>(float value) {
  const unsigned int bits = __float_as_uint(value);
  BFloat16Bits result;
  if (value != value) {
    result.bits = static_cast<unsigned short>((bits >> 16) & 0x8000u) | 0x7FC0u;
  } else {
    const unsigned int rounding = 0x7FFFu + ((bits >> 16) & 1u);
    result.bits = static_cast<unsigned short>((bits + rounding) >> 16);
  }
  return result;
}

}  // namespace recis_rows

// Gather and scatter of rows in block storage (recis.core.row_store on the GPU).
//
// A field is a list of device blocks that never move; kernels receive a device array of their
// addresses (see BlockRows). Copies are bitwise, in units of 1, 2, 4, 8 or 16 bytes: the widest
// that divides a row's bytes and the alignment of the dense array (the caller picks it). Work item
// t is unit t % units of position t / units, so neighbouring threads touch neighbouring bytes.
//
// Rows outside [0, capacity) are not stored: a gather gives zeros for them, a scatter skips them.
// When a row repeats in a scatter, the last position wins: the caller marks the last occurrence
// of every row with claim_last_positions + mark_last_positions and passes that mask.
#include "random.cuh"
#include "row_blocks.cuh"

using recis_rows::BFloat16Bits;
using recis_rows::BlockRows;
using recis_rows::first_item;
using recis_rows::HalfBits;
using recis_rows::item_stride;

namespace {

template <class Unit>
__device__ void gather_units(BlockRows store, const long long* rows, long long units, Unit* out,
                             long long total) {
  for (long long t = first_item(); t < total; t += item_stride()) {
    const long long i = t / units;
    const long long row = rows[i];
    Unit value{};
    if (store.holds(row)) value = store.row<const Unit>(row, units)[t - i * units];
    out[t] = value;
  }
}

template <class Unit>
__device__ void scatter_units(BlockRows store, const long long* rows, const unsigned char* is_last,
                              long long units, const Unit* values, long long total) {
  for (long long t = first_item(); t < total; t += item_stride()) {
    const long long i = t / units;
    const long long row = rows[i];
    if (!store.holds(row) || (is_last != nullptr && !is_last[i])) continue;
    store.row<Unit>(row, units)[t - i * units] = values[t];
  }
}

template <class Unit>
__device__ void fill_units(BlockRows store, const long long* rows, long long units, Unit value,
                           long long total) {
  for (long long t = first_item(); t < total; t += item_stride()) {
    const long long i = t / units;
    const long long row = rows[i];
    if (store.holds(row)) store.row<Unit>(row, units)[t - i * units] = value;
  }
}

template <class T>
__device__ void gather_as_float(BlockRows store, const long long* rows, long long width,
                                float* out, long long total) {
  for (long long t = first_item(); t < total; t += item_stride()) {
    const long long i = t / width;
    const long long row = rows[i];
    float value = 0.0f;
    if (store.holds(row)) value = recis_rows::to_float(store.row<const T>(row, width)[t - i * width]);
    out[t] = value;
  }
}

template <class T>
__device__ void scatter_from_float(BlockRows store, const long long* rows,
                                   const unsigned char* is_last, long long width,
                                   const float* values, long long total) {
  for (long long t = first_item(); t < total; t += item_stride()) {
    const long long i = t / width;
    const long long row = rows[i];
    if (!store.holds(row) || (is_last != nullptr && !is_last[i])) continue;
    store.row<T>(row, width)[t - i * width] = recis_rows::from_float<T>(values[t]);
  }
}

constexpr long long kEmptySlot = -1;

// The slot of a scratch hash table (open addressing, linear probing) where `row` is or goes.
__device__ __forceinline__ long long home_slot(long long row, long long slot_mask) {
  return static_cast<long long>(recis_random::mix64(static_cast<unsigned long long>(row)) &
                                static_cast<unsigned long long>(slot_mask));
}

}  // namespace

#define RECIS_STORE BlockRows{blocks, log2_block_rows, capacity}

// gather_rows_uN: out[i] = row rows[i] (zeros where the store does not hold it), N-bit units.
// scatter_rows_uN: row rows[i] = values[i] where is_last[i] (or everywhere if it is null).
#define RECIS_COPY_KERNELS(SUFFIX, UNIT)                                                         \
  extern "C" __global__ void gather_rows_##SUFFIX(                                               \
      const unsigned long long* blocks, long long log2_block_rows, long long capacity,          \
      const long long* rows, long long units, UNIT* out, long long total) {                     \
    gather_units<UNIT>(RECIS_STORE, rows, units, out, total);                                    \
  }                                                                                              \
  extern "C" __global__ void scatter_rows_##SUFFIX(                                              \
      const unsigned long long* blocks, long long log2_block_rows, long long capacity,          \
      const long long* rows, const unsigned char* is_last, long long units, const UNIT* values, \
      long long total) {                                                                         \
    scatter_units<UNIT>(RECIS_STORE, rows, is_last, units, values, total);                       \
  }

RECIS_COPY_KERNELS(u8, unsigned char)
RECIS_COPY_KERNELS(u16, unsigned short)
RECIS_COPY_KERNELS(u32, unsigned int)
RECIS_COPY_KERNELS(u64, unsigned long long)
RECIS_COPY_KERNELS(u128, uint4)

// fill_rows_uN: every element of the rows the store holds = `value` (its low N bits).
#define RECIS_FILL_KERNEL(SUFFIX, UNIT)                                                          \
  extern "C" __global__ void fill_rows_##SUFFIX(                                                 \
      const unsigned long long* blocks, long long log2_block_rows, long long capacity,          \
      const long long* rows, long long width, unsigned long long value, long long total) {      \
    fill_units<UNIT>(RECIS_STORE, rows, width, static_cast<UNIT>(value), total);                 \
  }

RECIS_FILL_KERNEL(u8, unsigned char)
RECIS_FILL_KERNEL(u16, unsigned short)
RECIS_FILL_KERNEL(u32, unsigned int)
RECIS_FILL_KERNEL(u64, unsigned long long)

// gather_<dtype>_as_float32: float32 copies of rows stored as <dtype> (zeros for rows not held).
// scatter_float32_as_<dtype>: float32 values rounded to <dtype> (nearest, ties to even).
#define RECIS_CONVERTING_KERNELS(SUFFIX, T)                                                      \
  extern "C" __global__ void gather_##SUFFIX##_as_float32(                                       \
      const unsigned long long* blocks, long long log2_block_rows, long long capacity,          \
      const long long* rows, long long width, float* out, long long total) {                    \
    gather_as_float<T>(RECIS_STORE, rows, width, out, total);                                    \
  }                                                                                              \
  extern "C" __global__ void scatter_float32_as_##SUFFIX(                                        \
      const unsigned long long* blocks, long long log2_block_rows, long long capacity,          \
      const long long* rows, const unsigned char* is_last, long long width,                     \
      const float* values, long long total) {                                                    \
    scatter_from_float<T>(RECIS_STORE, rows, is_last, width, values, total);                     \
  }

RECIS_CONVERTING_KERNELS(float16, HalfBits)
RECIS_CONVERTING_KERNELS(bfloat16, BFloat16Bits)

// Pass 1 of the last-occurrence mask: record, for every distinct row >= 0 of `rows`, its last
// position. `slot_rows` and `slot_last` (a power-of-two count of slots, more than the positions)
// start at -1.
extern "C" __global__ void claim_last_positions(const long long* rows, long long n,
                                                long long* slot_rows, long long* slot_last,
                                                long long slot_mask) {
  for (long long i = first_item(); i < n; i += item_stride()) {
    const long long row = rows[i];
    if (row < 0) continue;
    long long slot = home_slot(row, slot_mask);
    for (;;) {
      const long long seen = static_cast<long long>(
          atomicCAS(reinterpret_cast<unsigned long long*>(slot_rows + slot),
                    static_cast<unsigned long long>(kEmptySlot), static_cast<unsigned long long>(row)));
      if (seen == kEmptySlot || seen == row) {
        atomicMax(slot_last + slot, i);
        break;
      }
      slot = (slot + 1) & slot_mask;
    }
  }
}

// Pass 2: is_last[i] = 1 where position i is the last one of its row (0 for negative rows).
extern "C" __global__ void mark_last_positions(const long long* rows, long long n,
                                               const long long* slot_rows,
                                               const long long* slot_last, long long slot_mask,
                                               unsigned char* is_last) {
  for (long long i = first_item(); i < n; i += item_stride()) {
    const long long row = rows[i];
    unsigned char last = 0;
    if (row >= 0) {
      long long slot = home_slot(row, slot_mask);
      while (slot_rows[slot] != row) slot = (slot + 1) & slot_mask;
      last = slot_last[slot] == i;
    }
    is_last[i] = last;
  }
}

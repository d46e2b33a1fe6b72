// Storage tiers of a GPU table (recis.core.tiers.device): device memory (the hot tier) over
// pinned host memory mapped into the device's address space (the cold tier).
//
// Each field of a tiered table is one list of blocks (see BlockRows): first `hot_span` rows of
// device memory, the hot slots, then the pinned blocks, where table row r has its home at
// location hot_span + r. Every kernel that takes blocks and rows reads and writes a tiered table
// when given locations instead of rows: a hot row at its slot, a cold one straight in host memory.
//
// locate_rows: the location of each row. move_rows_uN: copy rows between locations, in N-bit
// units (the widest dividing a row's bytes, chosen by the caller); the sources and targets of one
// launch do not overlap.
#include "row_blocks.cuh"

using recis_rows::BlockRows;
using recis_rows::first_item;
using recis_rows::item_stride;

// out[i] = slot_of[rows[i]] when that is >= 0 (a hot slot), else hot_span + rows[i]; rows < 0
// stay -1, rows >= known_rows (no slot recorded) count as cold.
extern "C" __global__ void locate_rows(const long long* rows, long long n, const int* slot_of,
                                       long long known_rows, long long hot_span, long long* out) {
  for (long long i = first_item(); i < n; i += item_stride()) {
    const long long row = rows[i];
    long long location = -1;
    if (row >= 0) {
      const int slot = row < known_rows ? slot_of[row] : -1;
      location = slot >= 0 ? static_cast<long long>(slot) : hot_span + row;
    }
    out[i] = location;
  }
}

namespace {

template <class Unit>
__device__ void move_units(BlockRows store, const long long* from, const long long* to,
                           long long units, long long total) {
  for (long long t = first_item(); t < total; t += item_stride()) {
    const long long i = t / units;
    const long long source = from[i];
    const long long target = to[i];
    if (!store.holds(source) || !store.holds(target)) continue;
    const long long unit = t - i * units;
    store.row<Unit>(target, units)[unit] = store.row<const Unit>(source, units)[unit];
  }
}

}  // namespace

// move_rows_uN: location to[i] = location from[i] (pairs outside [0, capacity) are skipped).
#define RECIS_MOVE_KERNEL(SUFFIX, UNIT)                                                          \
  extern "C" __global__ void move_rows_##SUFFIX(                                                 \
      const unsigned long long* blocks, long long log2_block_rows, long long capacity,          \
      const long long* from, const long long* to, long long units, long long total) {           \
    move_units<UNIT>(BlockRows{blocks, log2_block_rows, capacity}, from, to, units, total);      \
  }

RECIS_MOVE_KERNEL(u8, unsigned char)
RECIS_MOVE_KERNEL(u16, unsigned short)
RECIS_MOVE_KERNEL(u32, unsigned int)
RECIS_MOVE_KERNEL(u64, unsigned long long)
RECIS_MOVE_KERNEL(u128, uint4)

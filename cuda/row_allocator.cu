// The row allocator of a GPU table (recis/core/cuda/row_allocator.py): rows for new ids whose
// count only the device knows, handed out as recis.core.row_allocator.RowAllocator does
// (released rows first, the last released first, then fresh rows from the high-water mark).
//
// `state` is int64[3]: high-water mark, number of free rows, rows requested so far (the host's
// count, for its bounds); `free` holds the released rows; `count` points at the number of new
// ids. Two kernels, so that no thread reads the state while another updates it:
//   allocate_ranked_rows    rows[k] for every rank k < n (-1 from `count` on)
//   allocate_ranked_commit  one thread updates the state and publishes it to the host mirror
#include "common.cuh"

using recis::for_each_index;

extern "C" __global__ void allocate_ranked_rows(const long long* __restrict__ state,
                                                const long long* __restrict__ free_rows,
                                                long long free_size,
                                                const long long* __restrict__ count, long long n,
                                                long long* __restrict__ rows) {
    const long long high_water = state[0], free_count = state[1], wanted = count[0];
    const long long reused = wanted < free_count ? wanted : free_count;
    for_each_index(n, [&](long long k) {
        long long row = -1;
        if (k < reused && free_size > 0) {
            long long at = free_count - 1 - k;
            at = at < 0 ? 0 : (at >= free_size ? free_size - 1 : at);
            row = free_rows[at];
        } else if (k < wanted) {
            row = high_water + k - reused;
        }
        rows[k] = row;
    });
}

// state += (count - reused, -reused), state[2] = requested; then host[0..2] = state, the last
// value written after the others are visible to the host (as publish_to_host).
extern "C" __global__ void allocate_ranked_commit(long long* state,
                                                  const long long* __restrict__ count,
                                                  long long requested, volatile long long* host) {
    if (blockIdx.x != 0 || threadIdx.x != 0) {
        return;
    }
    const long long wanted = count[0];
    const long long reused = wanted < state[1] ? wanted : state[1];
    state[0] += wanted - reused;
    state[1] -= reused;
    state[2] = requested;
    host[0] = state[0];
    host[1] = state[1];
    __threadfence_system();
    host[2] = state[2];
}

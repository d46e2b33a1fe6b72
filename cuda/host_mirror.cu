// Publishing device values to the host without a copy or a wait (recis/core/cuda/host_mirror.py).
//
// `host` is pinned host memory mapped into the device's address space, which the host reads
// whenever it likes. One thread writes the values in order, the last one only after the others
// are visible to the host: a host that reads host[n - 1] first and the others after it sees
// values at least as new as that last one.
#include "common.cuh"

// host[i] = values[i] for i < n.
extern "C" __global__ void publish_to_host(const long long* __restrict__ values, long long n,
                                           volatile long long* host) {
    if (blockIdx.x != 0 || threadIdx.x != 0 || n <= 0) {
        return;
    }
    for (long long i = 0; i + 1 < n; ++i) {
        host[i] = values[i];
    }
    __threadfence_system();
    host[n - 1] = values[n - 1];
}

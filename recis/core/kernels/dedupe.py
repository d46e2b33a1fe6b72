"""Deduplication kernels: unique keys in first-occurrence order, and sums per unique key.

Each kernel has a NumPy reference twin ``<name>_reference`` with the same signature.
"""

from __future__ import annotations

import numba
import numpy as np

from recis.core.kernels.id_map import EMPTY, hash_key


@numba.njit(parallel=True, cache=True)
def unique_inverse(keys, scratch, shift, regions, unique, inverse):
    """Fill ``unique`` (first-occurrence order) and ``inverse``; return the unique count.

    ``scratch`` is a zeroed ``int64[capacity, 2]`` table with ``capacity = 2**(64 - shift)``
    larger than ``len(keys)``, split into ``regions`` parts that threads fill independently (as
    in :func:`recis.core.kernels.id_map.insert_new`). Each slot holds a key and the position of
    its first occurrence; ranks of first occurrences then give the inverse index.
    """
    first = inverse  # holds first-occurrence positions until they are turned into ranks
    deferred = np.zeros(keys.shape[0], np.bool_)
    size = scratch.shape[0] // regions
    for r in numba.prange(regions):
        low, high = r * size, (r + 1) * size
        for i in range(keys.shape[0]):
            key = keys[i]
            home = np.int64(hash_key(key) >> np.uint64(shift))
            if key != EMPTY and low <= home < high:
                first[i] = _first_position(scratch, home, high, key, i)
                deferred[i] = first[i] < 0
    _first_positions_serial(keys, scratch, shift, deferred, first)
    return _ranks(keys, first, unique)


@numba.njit(inline="always")
def _first_position(scratch, s, end, key, position):
    """Find or add ``key`` in ``scratch[s:end]``; its first position, or -1 if it ran out."""
    while s < end:
        stored = scratch[s, 0]
        if stored == key:
            return scratch[s, 1]
        if stored == EMPTY:
            scratch[s, 0] = key
            scratch[s, 1] = position
            return position
        s += 1
    return -1


@numba.njit(inline="always")
def _first_positions_serial(keys, scratch, shift, deferred, first):
    """Resolve the key 0 (which marks empty slots) and keys deferred by the parallel pass."""
    mask = scratch.shape[0] - 1
    zero_first = -1
    for i in range(keys.shape[0]):
        key = keys[i]
        if key == EMPTY:
            zero_first = i if zero_first < 0 else zero_first
            first[i] = zero_first
        elif deferred[i]:
            s = np.int64(hash_key(key) >> np.uint64(shift))
            while scratch[s, 0] != key and scratch[s, 0] != EMPTY:
                s = (s + 1) & mask
            if scratch[s, 0] == EMPTY:
                scratch[s, 0] = key
                scratch[s, 1] = i
            first[i] = scratch[s, 1]


@numba.njit(inline="always")
def _ranks(keys, first, unique):
    """Turn first positions into ranks of first occurrence, in place; fill ``unique``."""
    count = 0
    for i in range(keys.shape[0]):
        if first[i] == i:
            unique[count] = keys[i]
            first[i] = count
            count += 1
        else:
            first[i] = first[first[i]]
    return count


def unique_inverse_reference(keys, scratch, shift, regions, unique, inverse):
    """Twin of :func:`unique_inverse` built on ``np.unique``."""
    sorted_unique, first, sorted_inverse = np.unique(keys, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    unique[: order.size] = sorted_unique[order]
    inverse[:] = rank[sorted_inverse.reshape(-1)]
    return order.size


@numba.njit(cache=True)
def sum_by_index(values, index, out):
    """Add row ``i`` of ``values`` into row ``index[i]`` of ``out`` (float32 accumulation)."""
    for i in range(values.shape[0]):
        target = index[i]
        for j in range(values.shape[1]):
            out[target, j] += values[i, j]


def sum_by_index_reference(values, index, out):
    """Twin of :func:`sum_by_index`."""
    np.add.at(out, index, values)

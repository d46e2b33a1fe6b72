"""Deduplication kernels: unique (key, tag) pairs in first-occurrence order, sums per unique row.

Each kernel has a NumPy reference twin ``<name>_reference`` with the same signature.
"""

from __future__ import annotations

import numba
import numpy as np

from recis.core.kernels.id_map import ROW_BITS, home_slot, pack, rank_first_occurrences


@numba.njit(parallel=True, cache=True)
def unique_inverse(keys, tags, tag_stride, scratch, shift, regions, unique, inverse):
    """Fill ``unique`` with the positions of first occurrences (in order) and ``inverse``; return
    the unique count.

    ``scratch`` is a zeroed ``int64[capacity, 2]`` table laid out like an id map's slots (see
    :mod:`recis.core.kernels.id_map`), ``capacity = 2**(64 - shift)`` larger than ``len(keys)``,
    split into ``regions`` parts that threads fill independently. Each slot holds a pair and the
    position of its first occurrence; ranks of first occurrences then give the inverse index.
    """
    first = inverse  # holds first-occurrence positions until they are turned into ranks
    deferred = np.zeros(keys.shape[0], np.bool_)
    size = scratch.shape[0] // regions
    for r in numba.prange(regions):
        low, high = r * size, (r + 1) * size
        for i in range(keys.shape[0]):
            tag = tags[i * tag_stride]
            home = home_slot(keys[i], tag, shift)
            if low <= home < high:
                first[i] = _first_position(scratch, home, high, keys[i], tag, i)
                deferred[i] = first[i] < 0
    mask = scratch.shape[0] - 1
    for i in range(keys.shape[0]):
        if deferred[i]:
            tag = tags[i * tag_stride]
            first[i] = _first_position(
                scratch, home_slot(keys[i], tag, shift), -1, keys[i], tag, i, mask
            )
    return rank_first_occurrences(first, unique)


@numba.njit(inline="always")
def _first_position(scratch, s, end, key, tag, position, mask=-1):
    """Find or add (key, tag) probing from ``s`` up to ``end`` (or all around with ``mask``);
    return its first position, or -1 if it reached ``end``."""
    while s != end:
        packed = scratch[s, 1]
        if packed == 0:
            scratch[s, 0] = key
            scratch[s, 1] = pack(tag, position)
            return position
        if scratch[s, 0] == key and (packed - 1) >> ROW_BITS == tag:
            return (packed - 1) & ((1 << ROW_BITS) - 1)
        s = (s + 1) & mask
    return -1


def unique_inverse_reference(keys, tags, tag_stride, scratch, shift, regions, unique, inverse):
    """Twin of :func:`unique_inverse` built on ``np.unique`` over (key, tag) rows."""
    pairs = np.stack([keys, tags[np.arange(keys.size) * tag_stride]], axis=1)
    _, first, pair_inverse = np.unique(pairs, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    unique[: order.size] = first[order]
    inverse[:] = rank[pair_inverse.reshape(-1)]
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

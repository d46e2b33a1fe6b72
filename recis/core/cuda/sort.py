"""Stable argsort of small non-negative int64 keys on the GPU that never waits for the device.

``cupy.argsort`` runs Thrust, whose sorts end by synchronising the stream; this module sorts with
the radix kernels of ``cuda/sort.cu`` instead (8 bits a pass, as many passes as ``key_bound``
needs), queued on CuPy's current stream. Equal keys keep their order, so sums taken in sorted
order are the CPU's. The CPU's twin is ``numpy.argsort(keys, kind="stable")``.

Importing this module does not import CuPy:

>>> radix_passes(1), radix_passes(256), radix_passes(257), radix_passes(2**40)
(1, 1, 2, 5)
"""

from __future__ import annotations

import numpy as np

from recis.core.cuda import loader

SOURCE = "sort.cu"
TILE = 256  # items per tile, as in cuda/sort.cu
DIGITS = 256


def radix_passes(key_bound: int) -> int:
    """8-bit passes that sort keys in ``[0, key_bound)``."""
    return max(1, -(-max(key_bound - 1, 1).bit_length() // 8))


def stable_argsort(keys, key_bound: int):
    """Positions of ``keys`` (int64 in ``[0, key_bound)``, on the GPU) in increasing key order,
    equal keys in their order; a key outside the range sorts by its low bits only."""
    xp = _xp()
    keys = xp.ascontiguousarray(keys, np.int64)
    n = keys.size
    order = xp.arange(n, dtype=np.int64)
    if n < 2:
        return order
    tiles = -(-n // TILE)
    digits = xp.empty(n, np.uint8)
    counts = xp.empty(DIGITS * tiles, np.int64)
    placed = xp.empty(n, np.int64)
    count = np.int64(n)
    for shift in range(0, 8 * radix_passes(key_bound), 8):
        _launch(_kernel("radix_digits"), n, (count, keys, order, np.int64(shift), digits))
        counts.fill(0)
        _launch(_kernel("radix_tile_counts"), n, (count, digits, np.int64(tiles), counts))
        starts = xp.cumsum(counts) - counts
        args = (count, digits, order, starts, np.int64(tiles), placed)
        _launch(_kernel("radix_scatter"), n, args)
        order, placed = placed, order
    return order


def group_by_key(keys, num_keys: int):
    """Items grouped by key without a sort (``cuda/sort.cu``'s ``group_*`` kernels): ``order``
    holds, for each key ``k`` in ``[0, num_keys)``, its items in increasing order between
    ``begin[k]`` and ``end[k]``; items whose key is out of range are left out (``order`` past
    ``end[-1]`` is unspecified). Never waits; :func:`group_by_key_reference` is its NumPy twin."""
    xp = _xp()
    keys = xp.ascontiguousarray(keys, np.int64)
    n, size = np.int64(keys.size), np.int64(num_keys)
    counts = xp.zeros(num_keys, np.int64)
    slot = xp.empty(keys.size, np.int64)
    _launch(_kernel("group_slots"), keys.size, (keys, n, size, counts, slot))
    end = xp.cumsum(counts)
    order, begin = xp.empty(keys.size, np.int64), xp.empty(num_keys, np.int64)
    args = (keys, slot, n, size, counts, end, order, begin)
    _launch(_kernel("group_place"), max(keys.size, num_keys), args)
    _launch(_kernel("group_sort"), num_keys, (order, begin, end, size))
    return order, begin, end


def group_by_key_reference(keys: np.ndarray, num_keys: int):
    """NumPy twin of :func:`group_by_key` (``order`` cut to ``end[-1]`` items).

    >>> [a.tolist() for a in group_by_key_reference(np.array([2, 0, 9, 2, -1, 0]), 3)]
    [[1, 5, 0, 3], [0, 2, 2], [2, 2, 4]]
    """
    inside = np.flatnonzero((keys >= 0) & (keys < num_keys))
    order = inside[np.argsort(keys[inside], kind="stable")]
    end = np.cumsum(np.bincount(keys[inside], minlength=num_keys)).astype(np.int64)
    begin = np.concatenate([[0], end[:-1]]).astype(np.int64)
    return order, begin, end


def _xp():
    return loader.require_cupy("sorting on the GPU")


def _kernel(name: str):
    return loader.kernel(SOURCE, name)


def _launch(kernel, n: int, args: tuple) -> None:
    loader.launch(kernel, n, args)

"""Kernels of a training lookup that deduplicates a batch while probing the id map.

Instead of deduplicating a batch in a scratch table and then probing the id map with the
distinct keys, :func:`find_or_mark` probes the id map once per key of the batch and marks each
pair's slot at its first occurrence with a placeholder ``-pack(tag, position)``; later
occurrences read their leader's position from it. :func:`rank_leaders` numbers the distinct
pairs in order of first occurrence, and :func:`unmark` writes the rows back (present pairs'
rows, and new rows for the absent ones). The slot layout is that of
:mod:`recis.core.kernels.id_map`.

Each kernel has a NumPy reference twin ``<name>_reference`` with the same signature.
"""

from __future__ import annotations

import numba
import numpy as np

from recis.core.kernels.id_map import ROW_BITS, ROW_MASK, home_slot, home_slot_reference, pack


@numba.njit(parallel=True, cache=True)
def find_or_mark(slots, shift, keys, tags, tag_stride, regions, rows, leader, slot_of):
    """One probe per key, marking every distinct (key, tag) at its first occurrence.

    For key ``i``, ``leader[i]`` is the position ``p`` of its pair's first occurrence in
    ``keys``. At ``p``: ``rows[p]`` is the pair's row (-1 if it is absent), ``slot_of[p]`` its
    slot, which holds the placeholder ``-pack(tag, p)`` until :func:`unmark` (absent pairs are
    placed there). ``rows`` of other positions are left as they were. Work is split into
    ``regions`` as in :func:`recis.core.kernels.id_map.insert_new`; the map must have room for
    every key being new.
    """
    n = keys.shape[0]
    homes = np.empty(n, np.int64)  # hashed first, in a loop of its own: probes then overlap
    for i in numba.prange(n):
        homes[i] = home_slot(keys[i], tags[i * tag_stride], shift)
    size = slots.shape[0] // regions
    deferred = np.zeros(n, np.bool_)
    for r in numba.prange(regions):
        low, high = r * size, (r + 1) * size
        for i in range(n):
            home = homes[i]
            if low <= home < high:
                deferred[i] = not _find_or_mark_one(
                    slots, home, high, -1, keys[i], tags[i * tag_stride], i, rows, leader, slot_of
                )
    mask = slots.shape[0] - 1
    for i in range(n):
        if deferred[i]:
            tag = tags[i * tag_stride]
            _find_or_mark_one(slots, homes[i], -1, mask, keys[i], tag, i, rows, leader, slot_of)


@numba.njit(inline="always")
def _find_or_mark_one(slots, s, end, mask, key, tag, i, rows, leader, slot_of):
    """Probe from ``s`` up to ``end`` (or around the map with ``mask``); False if it reached
    ``end`` without an answer."""
    while s != end:
        packed = slots[s, 1]
        if packed == 0:
            slots[s, 0] = key
            slots[s, 1] = -pack(tag, i)
            rows[i], leader[i], slot_of[i] = -1, i, s
            return True
        entry = packed if packed > 0 else -packed
        if slots[s, 0] == key and (entry - 1) >> ROW_BITS == tag:
            if packed < 0:  # marked by an earlier occurrence
                leader[i] = (entry - 1) & ROW_MASK
                return True
            slots[s, 1] = -pack(tag, i)
            rows[i], leader[i], slot_of[i] = (entry - 1) & ROW_MASK, i, s
            return True
        s = (s + 1) & mask
    return False


def find_or_mark_reference(slots, shift, keys, tags, tag_stride, regions, rows, leader, slot_of):
    """Twin of :func:`find_or_mark`: keys in order, one probe each, no regions."""
    mask = slots.shape[0] - 1
    homes = home_slot_reference(keys, tags[np.arange(keys.size) * tag_stride], shift)
    for i, key in enumerate(keys.tolist()):
        tag, s = int(tags[i * tag_stride]), int(homes[i])
        while slots[s, 1] != 0:
            entry = abs(int(slots[s, 1]))
            if slots[s, 0] == key and (entry - 1) >> ROW_BITS == tag:
                break
            s = (s + 1) & mask
        packed = int(slots[s, 1])
        if packed < 0:
            leader[i] = (-packed - 1) & ROW_MASK
            continue
        rows[i] = (packed - 1) & ROW_MASK if packed else -1
        slots[s] = key, -(1 + (tag << ROW_BITS) + i)
        leader[i], slot_of[i] = i, s


@numba.njit(cache=True)
def rank_leaders(leader, positions, index):
    """Number the distinct pairs in order of first occurrence: ``positions[k]`` is the first
    occurrence of pair ``k``, ``index[i]`` the number of the pair at ``i``; return how many
    pairs there are."""
    count = 0
    for i in range(leader.shape[0]):
        first = leader[i]
        if first == i:
            positions[count] = i
            index[i] = count
            count += 1
        else:
            index[i] = index[first]
    return count


def rank_leaders_reference(leader, positions, index):
    """Twin of :func:`rank_leaders`."""
    starts = np.flatnonzero(leader == np.arange(leader.size))
    rank = np.empty(leader.size, np.int64)
    rank[starts] = np.arange(starts.size)
    index[:] = rank[leader]
    positions[: starts.size] = starts
    return starts.size


@numba.njit(parallel=True, cache=True)
def unmark(slots, tags, tag_stride, positions, slot_of, rows):
    """Replace the placeholders of :func:`find_or_mark` by rows: pair ``k``, first seen at
    ``positions[k]``, gets ``rows[k]``."""
    for k in numba.prange(positions.shape[0]):
        position = positions[k]
        slots[slot_of[position], 1] = pack(tags[position * tag_stride], rows[k])


def unmark_reference(slots, tags, tag_stride, positions, slot_of, rows):
    """Twin of :func:`unmark`."""
    for k, position in enumerate(positions.tolist()):
        slots[slot_of[position], 1] = 1 + (int(tags[position * tag_stride]) << ROW_BITS) + rows[k]

"""Open-addressing kernels for :class:`recis.core.id_map.IdMap`.

Layout: ``slots`` is an ``int64[capacity, 2]`` array of (key, row) pairs, ``capacity`` a power of
two, probed linearly from the home slot given by the top bits of ``hash_key(key)``. Key 0 marks an
empty slot, so the real key 0 is kept outside the array by the caller (``zero_row``). Deletion
shifts later entries back (no tombstones), so probe chains never hold dead slots.

Each kernel has a NumPy reference twin ``<name>_reference`` with the same signature.
"""

from __future__ import annotations

import numba
import numpy as np

EMPTY = 0
_M1 = np.uint64(0xFF51AFD7ED558CCD)
_M2 = np.uint64(0xC4CEB9FE1A85EC53)
_S33 = np.uint64(33)


@numba.njit(inline="always")
def hash_key(key):
    """MurmurHash3's 64-bit finalizer of an int64 key, as uint64."""
    h = np.uint64(key)
    h ^= h >> _S33
    h *= _M1
    h ^= h >> _S33
    h *= _M2
    h ^= h >> _S33
    return h


def hash_key_reference(keys: np.ndarray) -> np.ndarray:
    """Vectorised twin of :func:`hash_key`."""
    h = keys.astype(np.int64).view(np.uint64).copy()
    with np.errstate(over="ignore"):
        h ^= h >> _S33
        h *= _M1
        h ^= h >> _S33
        h *= _M2
        h ^= h >> _S33
    return h


@numba.njit(inline="always")
def _home(key, shift):
    return np.int64(hash_key(key) >> np.uint64(shift))


@numba.njit(parallel=True, cache=True)
def find(slots, shift, zero_row, keys, out):
    """Write the row of each key to ``out`` (-1 where missing)."""
    mask = slots.shape[0] - 1
    for i in numba.prange(keys.shape[0]):
        key = keys[i]
        if key == EMPTY:
            out[i] = zero_row
            continue
        s = _home(key, shift)
        while True:
            stored = slots[s, 0]
            if stored == key:
                out[i] = slots[s, 1]
                break
            if stored == EMPTY:
                out[i] = -1
                break
            s = (s + 1) & mask


def find_reference(slots, shift, zero_row, keys, out):
    """Twin of :func:`find`: probe every key in Python."""
    homes = (hash_key_reference(keys) >> np.uint64(shift)).astype(np.int64)
    mask = slots.shape[0] - 1
    for i, key in enumerate(keys.tolist()):
        out[i] = zero_row if key == EMPTY else _probe_reference(slots, homes[i], mask, key)[1]


def _probe_reference(slots, s, mask, key):
    while slots[s, 0] not in (key, EMPTY):
        s = (s + 1) & mask
    return s, (slots[s, 1] if slots[s, 0] == key else -1)


@numba.njit(parallel=True, cache=True)
def insert_new(slots, shift, keys, rows, regions):
    """Insert keys known to be absent, distinct and non-zero, with their rows.

    The slots are split into ``regions`` equal parts (see :func:`region_count`); each thread
    places the keys whose home lies in its region, and leaves to a serial pass the few whose
    probe would run past the region's end.
    """
    size = slots.shape[0] // regions
    deferred = np.zeros(keys.shape[0], np.bool_)
    for r in numba.prange(regions):
        low, high = r * size, (r + 1) * size
        for i in range(keys.shape[0]):
            home = _home(keys[i], shift)
            if low <= home < high:
                deferred[i] = not _place_within(slots, home, high, keys[i], rows[i])
    for i in range(keys.shape[0]):
        if deferred[i]:
            _place(slots, _home(keys[i], shift), keys[i], rows[i])


@numba.njit(parallel=True, cache=True)
def rehash(old_slots, new_slots, new_shift, regions):
    """Move every entry of ``old_slots`` into the empty ``new_slots``, as :func:`insert_new`."""
    size = new_slots.shape[0] // regions
    deferred = np.zeros(old_slots.shape[0], np.bool_)
    for r in numba.prange(regions):
        low, high = r * size, (r + 1) * size
        for i in range(old_slots.shape[0]):
            key = old_slots[i, 0]
            if key == EMPTY:
                continue
            home = _home(key, new_shift)
            if low <= home < high:
                deferred[i] = not _place_within(new_slots, home, high, key, old_slots[i, 1])
    for i in range(old_slots.shape[0]):
        if deferred[i]:
            _place(new_slots, _home(old_slots[i, 0], new_shift), old_slots[i, 0], old_slots[i, 1])


def region_count(capacity: int) -> int:
    """Regions for parallel inserts: a power of two up to the thread count, >= 1024 slots each."""
    regions = 1
    while regions < numba.get_num_threads() and regions * 2048 <= capacity:
        regions *= 2
    return regions


@numba.njit(inline="always")
def _place_within(slots, s, end, key, row):
    """Store (key, row) in the first empty slot in ``[s, end)``; False if there is none."""
    while s < end and slots[s, 0] != EMPTY:
        s += 1
    if s == end:
        return False
    slots[s, 0] = key
    slots[s, 1] = row
    return True


@numba.njit(inline="always")
def _place(slots, s, key, row):
    mask = slots.shape[0] - 1
    while slots[s, 0] != EMPTY:
        s = (s + 1) & mask
    slots[s, 0] = key
    slots[s, 1] = row


def insert_new_reference(slots, shift, keys, rows, regions):
    """Twin of :func:`insert_new`."""
    homes = (hash_key_reference(keys) >> np.uint64(shift)).astype(np.int64)
    mask = slots.shape[0] - 1
    for i, key in enumerate(keys.tolist()):
        s, _ = _probe_reference(slots, homes[i], mask, key)
        slots[s] = key, rows[i]


@numba.njit(cache=True)
def erase(slots, shift, keys, out):
    """Remove keys (non-zero), writing each one's former row to ``out`` (-1 if absent)."""
    mask = slots.shape[0] - 1
    for i in range(keys.shape[0]):
        key = keys[i]
        s = _home(key, shift)
        while slots[s, 0] != key and slots[s, 0] != EMPTY:
            s = (s + 1) & mask
        if slots[s, 0] == EMPTY:
            out[i] = -1
            continue
        out[i] = slots[s, 1]
        _shift_back(slots, shift, s)


@numba.njit(inline="always")
def _shift_back(slots, shift, hole):
    """Close the hole at ``hole`` by moving later entries of the chain back."""
    mask = slots.shape[0] - 1
    j = hole
    while True:
        j = (j + 1) & mask
        if slots[j, 0] == EMPTY:
            break
        # the entry at j may move to the hole only if its home is not cyclically in (hole, j]
        if ((j - _home(slots[j, 0], shift)) & mask) >= ((j - hole) & mask):
            slots[hole, 0] = slots[j, 0]
            slots[hole, 1] = slots[j, 1]
            hole = j
    slots[hole, 0] = EMPTY
    slots[hole, 1] = 0


def erase_reference(slots, shift, keys, out):
    """Twin of :func:`erase`."""
    mask = slots.shape[0] - 1
    for i, key in enumerate(keys.tolist()):
        home = int(hash_key_reference(np.array([key]))[0] >> np.uint64(shift))
        s, out[i] = _probe_reference(slots, home, mask, key)
        if out[i] < 0:
            continue
        hole, j = s, s
        while slots[(j := (j + 1) & mask), 0] != EMPTY:
            j_home = int(hash_key_reference(slots[j : j + 1, 0])[0] >> np.uint64(shift))
            if (j - j_home) & mask >= (j - hole) & mask:
                slots[hole] = slots[j]
                hole = j
        slots[hole] = EMPTY, 0


def rehash_reference(old_slots, new_slots, new_shift, regions):
    """Twin of :func:`rehash`."""
    live = old_slots[old_slots[:, 0] != EMPTY]
    insert_new_reference(new_slots, new_shift, live[:, 0].copy(), live[:, 1].copy(), regions)

"""Open-addressing kernels for :class:`recis.core.id_map.IdMap`.

Layout: ``slots`` is an ``int64[capacity, 2]`` array, ``capacity`` a power of two. A slot holds
``(key, packed)`` with ``packed = 1 + (tag << ROW_BITS) + row``; ``packed == 0`` marks an empty
slot, so every int64 key is valid. The *tag* (``0 <= tag < 2**15``) names a logical table inside
a merged physical one: entries are equal when both key and tag are. Probing is linear from the
home slot, the top bits of ``hash_key(key ^ tag_salt(tag))``. Deletion shifts later entries back
(no tombstones), so probe chains never hold dead slots.

``tags`` arguments are int64 arrays read at ``tags[i * tag_stride]``: a stride of 0 applies one
tag to every key without materialising it.

Each kernel has a NumPy reference twin ``<name>_reference`` with the same signature.
"""

from __future__ import annotations

import numba
import numpy as np

ROW_BITS = 48
ROW_MASK = (1 << ROW_BITS) - 1
MAX_TAG = (1 << 15) - 1
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
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
def home_slot(key, tag, shift):
    """The slot where probing for (key, tag) starts."""
    salted = np.uint64(key) ^ (np.uint64(tag) * _GOLDEN)
    return np.int64(hash_key(salted) >> np.uint64(shift))


def home_slot_reference(keys, tags, shift) -> np.ndarray:
    """Twin of :func:`home_slot` over arrays."""
    with np.errstate(over="ignore"):
        salted = keys.view(np.uint64) ^ (np.asarray(tags, np.int64).view(np.uint64) * _GOLDEN)
    return (hash_key_reference(salted.view(np.int64)) >> np.uint64(shift)).astype(np.int64)


@numba.njit(inline="always")
def pack(tag, row):
    return 1 + (tag << ROW_BITS) + row


@numba.njit(inline="always")
def _probe(slots, key, tag, shift):
    """Slot holding (key, tag), or the empty slot that ends its probe chain."""
    mask = slots.shape[0] - 1
    s = home_slot(key, tag, shift)
    while slots[s, 1] != 0:
        if slots[s, 0] == key and (slots[s, 1] - 1) >> ROW_BITS == tag:
            break
        s = (s + 1) & mask
    return s


@numba.njit(parallel=True, cache=True)
def find(slots, shift, keys, tags, tag_stride, out):
    """Write the row of each (key, tag) to ``out`` (-1 where missing)."""
    for i in numba.prange(keys.shape[0]):
        s = _probe(slots, keys[i], tags[i * tag_stride], shift)
        out[i] = ((slots[s, 1] - 1) & ROW_MASK) if slots[s, 1] != 0 else -1


def find_reference(slots, shift, keys, tags, tag_stride, out):
    """Twin of :func:`find`: scan the occupied slots as a dict."""
    table = _as_dict_reference(slots)
    for i, key in enumerate(keys.tolist()):
        out[i] = table.get((key, int(tags[i * tag_stride])), -1)


def _as_dict_reference(slots) -> dict:
    live = slots[slots[:, 1] != 0]
    packed = live[:, 1] - 1
    tags, rows = (packed >> ROW_BITS).tolist(), (packed & ROW_MASK).tolist()
    return dict(zip(zip(live[:, 0].tolist(), tags, strict=True), rows, strict=True))


@numba.njit(parallel=True, cache=True)
def insert_new(slots, shift, keys, tags, tag_stride, rows, regions):
    """Insert (key, tag) pairs known to be absent and distinct, with their rows.

    The slots are split into ``regions`` equal parts (see :func:`region_count`); each thread
    places the pairs whose home lies in its region, and leaves to a serial pass the few whose
    probe would run past the region's end.
    """
    size = slots.shape[0] // regions
    deferred = np.zeros(keys.shape[0], np.bool_)
    for r in numba.prange(regions):
        low, high = r * size, (r + 1) * size
        for i in range(keys.shape[0]):
            tag = tags[i * tag_stride]
            home = home_slot(keys[i], tag, shift)
            if low <= home < high:
                deferred[i] = not _place_within(slots, home, high, keys[i], pack(tag, rows[i]))
    for i in range(keys.shape[0]):
        if deferred[i]:
            tag = tags[i * tag_stride]
            _place(slots, home_slot(keys[i], tag, shift), keys[i], pack(tag, rows[i]))


def insert_new_reference(slots, shift, keys, tags, tag_stride, rows, regions):
    """Twin of :func:`insert_new`: one probe at a time."""
    mask = slots.shape[0] - 1
    homes = home_slot_reference(keys, tags[np.arange(keys.size) * tag_stride], shift)
    for i, key in enumerate(keys.tolist()):
        s = int(homes[i])
        while slots[s, 1] != 0:
            s = (s + 1) & mask
        slots[s] = key, 1 + (int(tags[i * tag_stride]) << ROW_BITS) + int(rows[i])


_MIN_WAVE_CHUNK = 64  # slots per thread below which the rest of a rehash runs serially
_MAX_SPOTS = 256  # entries a chunk of a wave may leave in place before they are searched for


@numba.njit(parallel=True, cache=True)
def grow_in_place(slots, old_capacity, new_shift, regions):
    """Rehash the entries of ``slots[:old_capacity]`` for all of ``slots``, in place.

    ``slots`` is a power of two (the growth factor) times larger than ``old_capacity`` and
    empty past it. An entry's new home is at least its old home times the growth factor, so
    the old slots ``[a, 2a)`` rehash into ``[2a, ...)``, where every old slot has already been
    moved out. The old slots are therefore rehashed in waves, from the top half down: each
    wave splits its slots into ``regions`` chunks, rehashed at once, each into its own part of
    the new slots. An entry whose new home lies outside its chunk's part (a probe chain
    crossing chunks, or wrapping around), or whose probe would run past that part, waits in a
    side list; once the waves are too small to share, the rest moves serially from the top
    down, and the waiting entries are placed last. No second slot array is allocated.
    """
    factor = slots.shape[0] // old_capacity
    high = old_capacity
    waiting = np.empty((64, 2), np.int64)
    count = 0
    while high // 2 >= regions * _MIN_WAVE_CHUNK and regions > 1:
        low = high // 2
        chunk = (high - low) // regions
        spots = np.empty((regions, _MAX_SPOTS), np.int64)
        left = np.zeros(regions, np.int64)
        for r in numba.prange(regions):
            start = low + r * chunk
            left[r] = _rehash_chunk(slots, start, start + chunk, factor, new_shift, spots[r])
        for r in range(regions):  # the entries left in place move to the side list
            start = low + r * chunk
            if left[r] <= _MAX_SPOTS:
                chunk_spots = spots[r, : left[r]]
            else:  # too many to note: search the chunk
                chunk_spots = start + np.flatnonzero(slots[start : start + chunk, 1])
            for s in chunk_spots:
                if count == waiting.shape[0]:
                    waiting = _doubled(waiting)
                waiting[count, 0], waiting[count, 1] = slots[s, 0], slots[s, 1]
                slots[s, 0], slots[s, 1] = 0, 0
                count += 1
        high = low
    for s in range(high - 1, -1, -1):
        key, packed = slots[s, 0], slots[s, 1]
        if packed == 0:
            continue
        slots[s, 0] = 0
        slots[s, 1] = 0
        home = home_slot(key, (packed - 1) >> ROW_BITS, new_shift)
        if home >= s and _place_within(slots, home, slots.shape[0], key, packed):
            continue
        if count == waiting.shape[0]:
            waiting = _doubled(waiting)
        waiting[count, 0] = key
        waiting[count, 1] = packed
        count += 1
    for i in range(count):
        key, packed = waiting[i, 0], waiting[i, 1]
        _place(slots, home_slot(key, (packed - 1) >> ROW_BITS, new_shift), key, packed)


@numba.njit(inline="always")
def _rehash_chunk(slots, start, end, factor, new_shift, spots):
    """Move the entries of old slots ``[start, end)`` into new slots ``[start, end) * factor``
    (cleared or fresh); leave in place those that do not fit there, write where the first of
    them are to ``spots``, and return their count."""
    low, high = start * factor, end * factor
    left = 0
    for s in range(start, end):
        key, packed = slots[s, 0], slots[s, 1]
        if packed == 0:
            continue
        home = home_slot(key, (packed - 1) >> ROW_BITS, new_shift)
        if low <= home < high and _place_within(slots, home, high, key, packed):
            slots[s, 0] = 0
            slots[s, 1] = 0
        else:
            if left < spots.shape[0]:
                spots[left] = s
            left += 1
    return left


@numba.njit(parallel=True, cache=True)
def touch_pages(slots, start, step):
    """Write 0 to every ``step``-th slot from ``start`` (slots that are 0): the system maps each
    page of fresh memory on its first write, and zeroes it, here on every thread at once
    rather than later in a serial kernel."""
    for i in numba.prange((slots.shape[0] - start + step - 1) // step):
        slots[start + i * step, 1] = 0


def touch_pages_reference(slots, start, step):
    """Twin of :func:`touch_pages`."""
    slots[start::step, 1] = 0


@numba.njit(inline="always")
def _doubled(array):
    bigger = np.empty((2 * array.shape[0], array.shape[1]), array.dtype)
    bigger[: array.shape[0]] = array
    return bigger


def grow_in_place_reference(slots, old_capacity, new_shift, regions):
    """Twin of :func:`grow_in_place`: take the entries out, clear, insert them again."""
    old = slots[:old_capacity]
    live = old[old[:, 1] != 0].copy()
    slots[:] = 0
    packed = live[:, 1] - 1
    tags, rows = packed >> ROW_BITS, packed & ROW_MASK
    insert_new_reference(slots, new_shift, live[:, 0].copy(), tags, 1, rows, 1)


def region_count(capacity: int) -> int:
    """Regions for parallel inserts: a power of two up to the thread count, >= 1024 slots each."""
    regions = 1
    while regions < numba.get_num_threads() and regions * 2048 <= capacity:
        regions *= 2
    return regions


@numba.njit(inline="always")
def _place_within(slots, s, end, key, packed):
    """Store (key, packed) in the first empty slot in ``[s, end)``; False if there is none."""
    while s < end and slots[s, 1] != 0:
        s += 1
    if s == end:
        return False
    slots[s, 0] = key
    slots[s, 1] = packed
    return True


@numba.njit(inline="always")
def _place(slots, s, key, packed):
    mask = slots.shape[0] - 1
    while slots[s, 1] != 0:
        s = (s + 1) & mask
    slots[s, 0] = key
    slots[s, 1] = packed


@numba.njit(cache=True)
def erase(slots, shift, keys, tags, tag_stride, out):
    """Remove (key, tag) pairs, writing each one's former row to ``out`` (-1 if absent)."""
    for i in range(keys.shape[0]):
        s = _probe(slots, keys[i], tags[i * tag_stride], shift)
        if slots[s, 1] == 0:
            out[i] = -1
            continue
        out[i] = (slots[s, 1] - 1) & ROW_MASK
        _shift_back(slots, shift, s)


@numba.njit(inline="always")
def _shift_back(slots, shift, hole):
    """Close the hole at ``hole`` by moving later entries of the chain back."""
    mask = slots.shape[0] - 1
    j = hole
    while True:
        j = (j + 1) & mask
        if slots[j, 1] == 0:
            break
        home = home_slot(slots[j, 0], (slots[j, 1] - 1) >> ROW_BITS, shift)
        # the entry at j may move to the hole only if its home is not cyclically in (hole, j]
        if ((j - home) & mask) >= ((j - hole) & mask):
            slots[hole, 0] = slots[j, 0]
            slots[hole, 1] = slots[j, 1]
            hole = j
    slots[hole, 0] = 0
    slots[hole, 1] = 0


def erase_reference(slots, shift, keys, tags, tag_stride, out):
    """Twin of :func:`erase`: remove from a dict view, then rebuild the slots."""
    table = _as_dict_reference(slots)
    for i, key in enumerate(keys.tolist()):
        out[i] = table.pop((key, int(tags[i * tag_stride])), -1)
    slots[:] = 0
    if table:
        (keys_left, tags_left), rows_left = zip(*table, strict=True), list(table.values())
        insert_new_reference(
            slots, shift, np.array(keys_left, np.int64), np.array(tags_left, np.int64), 1,
            np.array(rows_left, np.int64), 1,
        )  # fmt: skip


@numba.njit(parallel=True, cache=True)
def find_or_place(slots, shift, keys, tags, tag_stride, regions, rows, first, slot_of):
    """One probe per key: the row of present keys, a placeholder for absent ones.

    For key ``i``: a present key gives ``rows[i] = row`` and ``first[i] = -1``; an absent key
    gets ``rows[i] = -1`` and ``first[i]``, the position of its first occurrence in ``keys``,
    where a placeholder ``-pack(tag, first)`` now holds its slot (``slot_of[first]``). The
    caller then gives the new keys rows with :func:`settle`. Work is split into ``regions`` as in
    :func:`insert_new`; the table must have room for every key being new.
    """
    size = slots.shape[0] // regions
    deferred = np.zeros(keys.shape[0], np.bool_)
    for r in numba.prange(regions):
        low, high = r * size, (r + 1) * size
        for i in range(keys.shape[0]):
            tag = tags[i * tag_stride]
            home = home_slot(keys[i], tag, shift)
            if low <= home < high:
                deferred[i] = not _find_or_place_one(
                    slots, home, high, -1, keys[i], tag, i, rows, first, slot_of
                )
    mask = slots.shape[0] - 1
    for i in range(keys.shape[0]):
        if deferred[i]:
            tag = tags[i * tag_stride]
            home = home_slot(keys[i], tag, shift)
            _find_or_place_one(slots, home, -1, mask, keys[i], tag, i, rows, first, slot_of)


@numba.njit(inline="always")
def _find_or_place_one(slots, s, end, mask, key, tag, i, rows, first, slot_of):
    """Probe from ``s`` up to ``end`` (or around the table with ``mask``); False if it reached
    ``end`` without an answer."""
    while s != end:
        packed = slots[s, 1]
        if packed == 0:
            slots[s, 0] = key
            slots[s, 1] = -pack(tag, i)
            rows[i], first[i], slot_of[i] = -1, i, s
            return True
        entry = packed if packed > 0 else -packed
        if slots[s, 0] == key and (entry - 1) >> ROW_BITS == tag:
            row = (entry - 1) & ROW_MASK
            rows[i], first[i] = (row, -1) if packed > 0 else (-1, row)
            return True
        s = (s + 1) & mask
    return False


@numba.njit(parallel=True, cache=True)
def settle(slots, tags, tag_stride, first, positions, slot_of, new_rows, rows):
    """Replace the placeholders of :func:`find_or_place` by real rows.

    ``first`` holds ranks by now (the new key of rank ``k``, first seen at ``positions[k]``,
    gets ``new_rows[k]``), as :func:`rank_first_occurrences` leaves it.
    """
    for i in numba.prange(first.shape[0]):
        if first[i] >= 0:
            rows[i] = new_rows[first[i]]
    for k in numba.prange(new_rows.shape[0]):
        position = positions[k]
        slots[slot_of[position], 1] = pack(tags[position * tag_stride], new_rows[k])


@numba.njit(cache=True)
def rank_first_occurrences(first, positions):
    """Turn first positions (-1: not new) into ranks of first occurrence, in place; write the
    positions of first occurrences, in order, to ``positions``; return how many there are."""
    count = 0
    for i in range(first.shape[0]):
        if first[i] < 0:
            continue
        if first[i] == i:
            positions[count] = i
            first[i] = count
            count += 1
        else:
            first[i] = first[first[i]]
    return count


def find_or_place_reference(slots, shift, keys, tags, tag_stride, regions, rows, first, slot_of):
    """Twin of :func:`find_or_place`: keys in order, one probe each, no regions."""
    mask = slots.shape[0] - 1
    homes = home_slot_reference(keys, tags[np.arange(keys.size) * tag_stride], shift)
    for i, key in enumerate(keys.tolist()):
        tag, s = int(tags[i * tag_stride]), int(homes[i])
        while slots[s, 1] != 0:
            entry = abs(int(slots[s, 1]))
            if slots[s, 0] == key and (entry - 1) >> ROW_BITS == tag:
                break
            s = (s + 1) & mask
        if slots[s, 1] == 0:
            slots[s] = key, -(1 + (tag << ROW_BITS) + i)
            rows[i], first[i], slot_of[i] = -1, i, s
            continue
        row = (abs(int(slots[s, 1])) - 1) & ROW_MASK
        rows[i], first[i] = (row, -1) if slots[s, 1] > 0 else (-1, row)


def settle_reference(slots, tags, tag_stride, first, positions, slot_of, new_rows, rows):
    """Twin of :func:`settle`."""
    new = first >= 0
    rows[new] = new_rows[first[new]]
    for k, position in enumerate(positions.tolist()):
        slots[slot_of[position], 1] = (
            1 + (int(tags[position * tag_stride]) << ROW_BITS) + int(new_rows[k])
        )


def rank_first_occurrences_reference(first, positions):
    """Twin of :func:`rank_first_occurrences`."""
    new = np.flatnonzero(first >= 0)
    starts = new[first[new] == new]
    rank = np.full(first.size, -1, np.int64)
    rank[starts] = np.arange(starts.size)
    first[new] = rank[first[new]]
    positions[: starts.size] = starts
    return starts.size

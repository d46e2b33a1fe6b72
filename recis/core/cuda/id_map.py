"""GPU twins of the id map kernels (:mod:`recis.core.kernels.id_map`) on CuPy arrays.

Each function has the signature and the results of its CPU namesake, over the same slot layout
(``int64[capacity, 2]`` of (key, packed), see the CPU module), so :class:`recis.core.id_map.IdMap`
runs one algorithm on either. The kernels are ``cuda/id_map.cu``; all work is queued on CuPy's
current stream and nothing waits for the device (:func:`rank_first_occurrences` returns the
number of new keys as a device array). The GPU places concurrently, so which slot of a probe
chain a key takes may differ from the CPU's; every lookup result is the same.

``regions`` arguments are accepted for signature parity and ignored (:func:`region_count` is 1).

>>> region_count(1 << 20)
1
"""

from __future__ import annotations

import numpy as np

from recis.core.cuda import loader

SOURCE = "id_map.cu"


def _run(name: str, n: int, *args) -> None:
    loader.launch(loader.kernel(SOURCE, name), n, args)


def _mask(slots) -> np.int64:
    return np.int64(slots.shape[0] - 1)


def region_count(capacity: int) -> int:
    """Regions for parallel inserts: one, since GPU threads claim slots with atomics."""
    return 1


def home_slot(keys, tags, tag_stride: int, shift: int):
    """Home slots of (key, tag) pairs, as :func:`recis.core.kernels.id_map.home_slot`."""
    cupy = loader.require_cupy("GPU home slots")
    out = cupy.empty(keys.size, np.int64)
    _run(
        "id_map_home_slots", keys.size,
        keys, tags, np.int64(tag_stride), np.int32(shift), np.int64(keys.size), out,
    )  # fmt: skip
    return out


def find(slots, shift, keys, tags, tag_stride, out) -> None:
    """Write the row of each (key, tag) to ``out`` (-1 where missing)."""
    _run(
        "id_map_find", keys.size,
        slots, _mask(slots), np.int32(shift), keys, tags, np.int64(tag_stride),
        np.int64(keys.size), out,
    )  # fmt: skip


def insert_new(slots, shift, keys, tags, tag_stride, rows, regions) -> None:
    """Insert (key, tag) pairs known to be absent and distinct, with their rows."""
    _run(
        "id_map_insert_new", keys.size,
        slots, _mask(slots), np.int32(shift), keys, tags, np.int64(tag_stride), rows,
        np.int64(keys.size),
    )  # fmt: skip


def rehash(old_slots, new_slots, new_shift, regions) -> None:
    """Move every entry of ``old_slots`` into the empty ``new_slots``."""
    old_capacity = old_slots.shape[0]
    _run(
        "id_map_rehash", old_capacity,
        old_slots, np.int64(old_capacity), new_slots, _mask(new_slots), np.int32(new_shift),
    )  # fmt: skip


def find_or_place(slots, shift, keys, tags, tag_stride, regions, rows, first, slot_of) -> None:
    """One probe per key: the row of present keys, a placeholder for absent ones.

    As on the CPU: a present key gives ``rows[i] = row``, ``first[i] = -1``; an absent key gets
    ``rows[i] = -1``, ``first[i]`` = the position of its first occurrence in ``keys``, and the
    placeholder ``-pack(tag, first)`` in slot ``slot_of[i]``. The table must have room for every
    key being new.
    """
    n = keys.size
    _run(
        "id_map_find_or_claim", n,
        slots, _mask(slots), np.int32(shift), keys, tags, np.int64(tag_stride), np.int64(n),
        rows, slot_of,
    )  # fmt: skip
    _run("id_map_claimants", n, slots, slot_of, np.int64(n), first)


def rank_first_occurrences(first, positions):
    """Turn first positions (-1: not new) into ranks of first occurrence, in place; write the
    positions of first occurrences, in order, to ``positions``; return how many there are, as
    a 0-d device array (the CPU kernel returns an int): nothing waits for the device.
    ``positions`` past that count are left as they were.
    """
    cupy = loader.require_cupy("GPU ranking")
    n = first.size
    if n == 0:
        return cupy.zeros((), np.int64)
    flags = cupy.empty(n, np.int64)
    _run("mark_first_occurrences", n, first, np.int64(n), flags)
    counts = cupy.cumsum(flags)
    _run("rank_first_occurrences", n, first, counts, np.int64(n), positions)
    return counts[-1]


def settle(slots, tags, tag_stride, first, positions, slot_of, new_rows, rows) -> None:
    """Replace the placeholders of :func:`find_or_place` by real rows (``first`` holds ranks,
    as :func:`rank_first_occurrences` leaves it). ``new_rows`` may be padded with -1 past the
    number of new keys (as :meth:`DeviceRowAllocator.allocate_ranked` gives them), and
    ``positions`` with anything there."""
    n = first.size
    _run(
        "id_map_settle", n,
        slots, tags, np.int64(tag_stride), first, positions, slot_of, new_rows,
        np.int64(new_rows.size), np.int64(n), rows,
    )  # fmt: skip


def erase(slots, shift, keys, tags, tag_stride, out) -> None:
    """Remove (key, tag) pairs, writing each one's former row to ``out`` (-1 if absent).

    Keys should be distinct (a repeat gets -1). Entries are marked dead, then each probe cluster
    holding dead entries is compacted by backward shifting, one thread per cluster.
    """
    cupy = loader.require_cupy("GPU erase")
    n = keys.size
    dead_slot = cupy.empty(n, np.int64)
    cluster_start = cupy.empty(n, np.int64)
    mask, shift = _mask(slots), np.int32(shift)
    _run(
        "id_map_erase_mark", n,
        slots, mask, shift, keys, tags, np.int64(tag_stride), np.int64(n), out, dead_slot,
    )  # fmt: skip
    _run("id_map_erase_clusters", n, slots, mask, dead_slot, np.int64(n), cluster_start)
    _run("id_map_erase_compact", n, slots, mask, shift, cluster_start, np.int64(n))

"""Row-wise sharding: which rank owns the row of an id.

The owner of id ``i`` of logical table ``t`` is ``mix64(i ^ table_hash(t)) % world_size``: a
function of the table's name, the id and the world size only, so any rank (and a checkpoint
loader at another world size) computes it without coordination, and ids of one table spread evenly
over ranks whatever their distribution.

>>> import numpy as np
>>> owners(np.arange(6), None, ["item"], world_size=2).tolist()
[1, 0, 0, 1, 0, 1]
>>> order, counts = group_by_owner(np.array([1, 0, 1, 1]), world_size=2)
>>> order.tolist(), counts.tolist()
([1, 0, 2, 3], [1, 3])
"""

from __future__ import annotations

import functools

import numba
import numpy as np

from recis.core.arrays import array_module, int64_vector
from recis.core.cuda import loader
from recis.core.cuda.sort import stable_argsort
from recis.core.dedupe import occurrence_counts, tag_vector
from recis.core.initializers import table_hash
from recis.core.kernels.random import mix64, mix64_reference


@numba.njit(cache=True)
def owner_kernel(ids, tags, tag_stride, salts, world_size, out):
    """``out[i] = mix64(ids[i] ^ salts[tags[i * tag_stride]]) % world_size``."""
    for i in range(ids.shape[0]):
        salt = salts[tags[i * tag_stride]]
        out[i] = mix64(np.uint64(ids[i]) ^ salt) % np.uint64(world_size)


def owner_kernel_reference(ids, tags, tag_stride, salts, world_size, out):
    """NumPy twin of :func:`owner_kernel`."""
    tag_of = tags[np.arange(ids.size) * tag_stride] if ids.size else tags[:0]
    mixed = mix64_reference(ids.view(np.uint64) ^ salts[tag_of])
    out[:] = mixed % np.uint64(world_size)


def owners(ids: np.ndarray, tags, children: list[str], world_size: int) -> np.ndarray:
    """Owner rank (int64) of each id; ``tags`` index ``children`` (None: all of ``children[0]``).
    Device (CuPy) ids give device owners, computed there without waiting for the device (the
    tags of a device batch are then trusted to lie in range, as a table's planner makes them)."""
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    ids = int64_vector(ids, "ids")
    xp = array_module(ids)
    tag_array, stride = tag_vector(tags, ids.size, xp, checked=xp is not np)
    if xp is not np:
        return device_owners(ids, tag_array, stride, device_salts(tuple(children)), world_size)
    salts = np.array([table_hash(name) for name in children], np.uint64)
    if ids.size and tag_array.size and int(tag_array.max()) >= len(children):
        raise ValueError(f"tags: {int(tag_array.max())} names no table of {children}")
    out = np.empty(ids.size, np.int64)
    owner_kernel(ids, tag_array, stride, salts, world_size, out)
    return out


@functools.cache
def device_salts(children: tuple[str, ...]):
    """The tables' salts on the current GPU, copied there once."""
    cupy = loader.require_cupy("sharding ids on the GPU")
    return cupy.asarray(np.array([table_hash(name) for name in children], np.uint64))


def device_owners(ids, tags, tag_stride: int, salts, world_size: int):
    """:func:`owner_kernel` as element-wise operations of the ids' array module (CuPy's
    fused element-wise kernels on the GPU), returning the owners."""
    salt = salts[tags] if tag_stride else salts[tags[:1]]
    mixed = mix64_reference(ids.view(np.uint64) ^ salt)
    return (mixed % np.uint64(world_size)).astype(np.int64)


def group_by_owner(owner: np.ndarray, world_size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(order, counts)``: positions sorted by owner (stable), and how many each rank owns,
    in the owners' array module (on the GPU nothing waits for the device)."""
    counts = occurrence_counts(owner, world_size)
    if array_module(owner) is np:
        return np.argsort(owner, kind="stable"), counts
    return stable_argsort(owner, world_size), counts

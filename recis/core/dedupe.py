"""Deduplication of id batches: unique ids with inverse index, and per-id gradient sums.

Ids may carry a *tag* (the logical table of a merged table, see :mod:`recis.core.id_map`):
(id, tag) pairs are then what is deduplicated. NumPy ids run the numba kernels, CuPy ids the CUDA
ones (:mod:`recis.core.cuda.dedupe`), with the same results.

>>> import numpy as np
>>> unique, inverse = unique_inverse(np.array([7, 3, 7, 0, 3]))
>>> unique.tolist(), inverse.tolist()
([7, 3, 0], [0, 1, 0, 2, 1])
>>> first_occurrences(np.array([7, 7, 7]), tags=np.array([1, 2, 1]))[0].tolist()
[0, 1]
>>> sum_by_index(np.ones((5, 2), np.float32), inverse, 3).tolist()
[[2.0, 2.0], [2.0, 2.0], [1.0, 1.0]]
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

from recis.core import arrays as interop
from recis.core.arrays import array_module, int64_vector
from recis.core.cuda import dedupe as cuda_kernels
from recis.core.cuda import id_map as cuda_id_map
from recis.core.cuda.host_mirror import deferred_errors
from recis.core.kernels import dedupe as kernels
from recis.core.kernels.id_map import MAX_TAG


def first_occurrences(keys: np.ndarray, tags=None, padded: bool = False, *, tags_checked=False):
    """Positions of the first occurrence of each distinct (key, tag), in order, and for every
    position the index of its pair among them.

    With ``padded``, the positions have one entry per key, those past the number of distinct
    pairs being 0; the inverse never points at them (so :func:`occurrence_counts`
    gives them count 0). On the GPU this is what
    keeps the call from waiting for the device: otherwise the number of pairs is read back.
    ``tags_checked`` says the caller made the tags and knows them to lie in range (see
    :func:`tag_vector`).

    >>> first_occurrences(np.array([5, 6, 5]), padded=True)[0].tolist()
    [0, 1, 0]
    """
    keys = int64_vector(keys, "keys")
    xp = array_module(keys)
    tag_array, stride = tag_vector(tags, keys.size, xp, checked=tags_checked)
    capacity = scratch_capacity(keys.size)
    scratch = xp.zeros((capacity, 2), np.int64)
    on_cpu = xp is np
    first = interop.empty(keys.size, np.int64, xp) if on_cpu else xp.zeros(keys.size, np.int64)
    inverse = interop.empty(keys.size, np.int64, xp)
    kernel = kernels.unique_inverse if on_cpu else cuda_kernels.unique_inverse
    # One region on the CPU: threads filling interleaved positions of ``first`` and ``inverse``
    # contend for their cache lines, which made two threads slower than one.
    regions = 1 if on_cpu else cuda_id_map.region_count(capacity)
    shift = 65 - capacity.bit_length()
    count = kernel(keys, tag_array, stride, scratch, shift, regions, first, inverse)
    if not padded:
        return first[: int(count)], inverse  # on the GPU, int() waits for the device
    if on_cpu:
        first[count:] = 0
    return first, inverse


def occurrence_counts(index, size: int, weights=None):
    """How often each of ``size`` distinct ids occurs, given each occurrence's ``index`` among
    them (int64, on the device of ``index``); with int64 ``weights``, one per occurrence, the
    sum of the weights of each id's occurrences (on the CPU exact up to 2**53).

    >>> occurrence_counts(np.array([0, 1, 0]), 3).tolist()
    [2, 1, 0]
    >>> occurrence_counts(np.array([0, 1, 0]), 3, weights=np.array([4, 5, 6])).tolist()
    [10, 5, 0]
    """
    xp = array_module(index)
    if xp is not np:  # no size read back, as bincount does
        return cuda_kernels.occurrence_counts(index, size, weights)
    if not index.size:
        return xp.zeros(size, np.int64)
    counts = xp.bincount(index, weights, minlength=size)  # float64 sums: exact below 2**53
    return counts.astype(np.int64, copy=False)


def unique_inverse(keys: np.ndarray, tags=None) -> tuple[np.ndarray, np.ndarray]:
    """Distinct keys in order of first occurrence, and each key's index into them."""
    keys = int64_vector(keys, "keys")
    first, inverse = first_occurrences(keys, tags)
    return keys[first], inverse


def sum_by_index(values: np.ndarray, index: np.ndarray, num_rows: int) -> np.ndarray:
    """Sum the rows of ``values[n, d]`` that share an ``index`` into ``float32[num_rows, d]``."""
    index = int64_vector(index, "index")
    if values.ndim != 2 or values.shape[0] != index.size:
        raise ValueError(f"values must be [{index.size}, d], got {values.shape}")
    if index.size and (index.min() < 0 or index.max() >= num_rows):
        raise ValueError(f"index must lie in [0, {num_rows})")
    out = interop.zeros((num_rows, values.shape[1]), np.float32)
    kernels.sum_by_index(np.ascontiguousarray(values, np.float32), index, out)
    return out


def scratch_capacity(n: int) -> int:
    """Power-of-two slot count for a scratch table holding ``n`` keys at load ≤ 0.5."""
    return 1 << max(4, (2 * max(n, 1) - 1).bit_length())


def tag_vector(
    tags, size: int, xp: ModuleType | None = None, checked: bool = False
) -> tuple[np.ndarray, int]:
    """Tags as (int64 array, stride): a scalar or None becomes one value read with stride 0.

    ``xp`` is the array module of the keys (default: that of ``tags``); per-key tags must live
    there too. CuPy tags are checked without waiting for the device: tags out of range act as
    tag 0, and the error is raised by a later call
    (:func:`recis.core.cuda.host_mirror.raise_deferred_errors`). ``checked`` per-key tags are
    taken as they are: their maker guarantees the range (a table's planner, or this check done
    before), which saves the check's device work.
    """
    if tags is None or np.ndim(tags) == 0:
        tag_array = np.array([0 if tags is None else tags], np.int64)
        _check_tag_range(tag_array)
        if xp not in (None, np):  # filled on the device: no copy, no wait
            tag_array = xp.full(1, tag_array[0], np.int64)
        return tag_array, 0
    tag_array = int64_vector(tags, "tags")
    if xp is not None and array_module(tag_array) is not xp:
        raise TypeError(f"tags must be a {xp.__name__} array like the keys")
    if tag_array.size != size:
        raise ValueError(f"tags must have one entry per key ({size}), got {tag_array.size}")
    return (tag_array if checked else _check_tag_range(tag_array)), 1


def _check_tag_range(tag_array):
    """``tag_array`` checked to lie in [0, MAX_TAG] (on the GPU: see :func:`tag_vector`)."""
    message = f"tags must lie in [0, {MAX_TAG}]"
    xp = array_module(tag_array)
    if xp is np:
        if tag_array.size and (tag_array.min() < 0 or tag_array.max() > MAX_TAG):
            raise ValueError(message)
        return tag_array
    errors = deferred_errors()
    errors.raise_found()
    bad = (tag_array < 0) | (tag_array > MAX_TAG)
    errors.report(
        bad.sum(),
        lambda count: ValueError(
            f"{message}, but {count} tags of a GPU batch did not (they were read as tag 0)"
        ),
    )
    return xp.where(bad, 0, tag_array)

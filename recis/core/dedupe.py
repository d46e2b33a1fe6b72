"""Deduplication of id batches: unique ids with inverse index, and per-id gradient sums.

>>> import numpy as np
>>> unique, inverse = unique_inverse(np.array([7, 3, 7, 0, 3]))
>>> unique.tolist(), inverse.tolist()
([7, 3, 0], [0, 1, 0, 2, 1])
>>> sum_by_index(np.ones((5, 2), np.float32), inverse, 3).tolist()
[[2.0, 2.0], [2.0, 2.0], [1.0, 1.0]]
"""

from __future__ import annotations

import numpy as np

from recis.core import interop
from recis.core.kernels import dedupe as kernels
from recis.core.kernels.id_map import region_count


def scratch_capacity(n: int) -> int:
    """Power-of-two slot count for a scratch table holding ``n`` keys at load ≤ 0.5."""
    return 1 << max(4, (2 * max(n, 1) - 1).bit_length())


def unique_inverse(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique int64 keys in order of first occurrence, and each key's index into them."""
    keys = _int64_vector(keys, "keys")
    capacity = scratch_capacity(keys.size)
    scratch = np.zeros((capacity, 2), np.int64)
    unique = interop.empty(keys.size, np.int64)
    inverse = interop.empty(keys.size, np.int64)
    shift = 65 - capacity.bit_length()
    regions = region_count(capacity)
    count = kernels.unique_inverse(keys, scratch, shift, regions, unique, inverse)
    return unique[:count], inverse


def sum_by_index(values: np.ndarray, index: np.ndarray, num_rows: int) -> np.ndarray:
    """Sum the rows of ``values[n, d]`` that share an ``index`` into ``float32[num_rows, d]``."""
    index = _int64_vector(index, "index")
    if values.ndim != 2 or values.shape[0] != index.size:
        raise ValueError(f"values must be [{index.size}, d], got {values.shape}")
    if index.size and (index.min() < 0 or index.max() >= num_rows):
        raise ValueError(f"index must lie in [0, {num_rows})")
    out = interop.zeros((num_rows, values.shape[1]), np.float32)
    kernels.sum_by_index(np.ascontiguousarray(values, np.float32), index, out)
    return out


def _int64_vector(array, name: str) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim != 1 or array.dtype.kind not in "iu":
        raise TypeError(f"{name} must be a 1-D integer array, got {array.dtype}{list(array.shape)}")
    return np.ascontiguousarray(array, np.int64)

"""Bucketize numeric values by sorted boundaries (RecIS ``Bucketize``, upper-bound semantics).

A value's bucket is the number of boundaries ≤ the value (C++ ``std::upper_bound``), as int64;
NaN goes to the last bucket, ``len(boundaries)``. Boundaries are kept in float64. A float16 or
float32 value is compared with the boundaries rounded to float32, exactly as RecIS compares its
float32 boundaries with float32 values; other values (float64, integers) are compared with the
float64 boundaries, after conversion to float64.

>>> bucketize(np.array([17.0, 18.0, 30.0, 99.0]), [18, 25, 35]).tolist()
[0, 1, 2, 3]
>>> bucketize(np.array([0.1], np.float32), [0.1]).tolist()
[1]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from recis.core import arrays as interop
from recis.core.features.columns import (
    Column,
    check_count,
    check_dtype,
    flat_values,
    group_indices,
    labels_for,
    namespace_of,
    run_fused,
    with_values,
)
from recis.core.kernels import feature_ops as kernels

_FLOAT32_PRECISION = frozenset(np.dtype(t) for t in ("float16", "float32"))


def bucketize(column: Column, boundaries) -> Column:
    """The bucket of every value of ``column`` (int64, same structure)."""
    return fused_bucketize([column], [boundaries], labels=["column"])[0]


def fused_bucketize(
    columns: Sequence[Column], boundaries: Sequence, labels: Sequence[str] | None = None
) -> list[Column]:
    """:func:`bucketize` of every column with its own boundaries: one kernel call per value
    dtype and device.

    ``labels`` name the columns in error messages (default ``columns[i]``).
    """
    check_count("boundaries", boundaries, len(columns))
    labels = labels_for(len(columns), labels)
    values = [flat_values(c, label) for c, label in zip(columns, labels, strict=True)]
    for v, label in zip(values, labels, strict=True):
        check_dtype(v, "iuf", label, "integer or float")
    edges = [
        compared_boundaries(as_boundaries(b, f"boundaries of {label}"), v.dtype)
        for b, v, label in zip(boundaries, values, labels, strict=True)
    ]
    namespaces = [namespace_of(v) for v in values]
    outs = [interop.empty(len(v), np.int64, xp) for v, xp in zip(values, namespaces, strict=True)]
    values = [_kernel_values(v) for v in values]
    keys = [(xp, v.dtype) for xp, v in zip(namespaces, values, strict=True)]
    for (xp, _), group in group_indices(keys).items():
        run_fused(
            xp,
            kernels.fused_bucketize,
            "fused_bucketize",
            [values[i] for i in group],
            [edges[i] for i in group],
            [outs[i] for i in group],
        )
    return [with_values(c, o) for c, o in zip(columns, outs, strict=True)]


def as_boundaries(boundaries, name: str = "boundaries") -> np.ndarray:
    """``boundaries`` as a float64 array, or ``ValueError`` unless 1-D, finite and sorted.

    >>> as_boundaries([3, 1])
    Traceback (most recent call last):
    ...
    ValueError: boundaries: must be sorted in ascending order
    """
    edges = np.array(boundaries, dtype=np.float64)
    if edges.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D sequence, got shape {edges.shape}")
    if not np.all(np.isfinite(edges)):
        raise ValueError(f"{name}: must be finite")
    if np.any(edges[1:] < edges[:-1]):
        raise ValueError(f"{name}: must be sorted in ascending order")
    return edges


def compared_boundaries(edges: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """The float64 boundaries that values of ``dtype`` are compared with (see module doc)."""
    if dtype in _FLOAT32_PRECISION:
        return edges.astype(np.float32).astype(np.float64)
    return edges


def _kernel_values(values: np.ndarray) -> np.ndarray:
    """Values in one of the kernel's dtypes (float32, float64, int64), converted exactly."""
    if values.dtype == np.float16:
        return values.astype(np.float32)
    if values.dtype == np.uint64:
        return values.astype(np.float64)  # as NumPy compares uint64 with float64
    if values.dtype.kind in "iu" and values.dtype != np.int64:
        return values.astype(np.int64)
    return values

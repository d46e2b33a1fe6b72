"""Unsigned 64-bit modulo of int64 ids (RecIS ``Mod``).

Each id is reinterpreted as uint64 and reduced modulo ``mod_value``; the result is int64 (a
``mod_value`` above 2**63 can give results that read as negative int64).

>>> mod(np.array([7, -1]), 10).tolist()
[7, 5]
>>> from recis.core.ragged import Ragged
>>> fused_mod([np.array([7]), Ragged(np.array([9, 4]), np.array([0, 2]))], [4, 3])[1].values
array([0, 1])
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import numpy as np

from recis.core import arrays as interop
from recis.core.features.columns import (
    Column,
    check_count,
    flat_values,
    group_indices,
    labels_for,
    namespace_of,
    require_dtype,
    run_fused,
    with_values,
)
from recis.core.kernels import feature_ops as kernels

UINT64_MAX = 2**64 - 1


def mod(column: Column, mod_value: int) -> Column:
    """``column``'s int64 ids as uint64, modulo ``mod_value`` (in [1, 2**64 - 1])."""
    return fused_mod([column], [mod_value], labels=["column"])[0]


def fused_mod(
    columns: Sequence[Column], mod_values: Sequence[int], labels: Sequence[str] | None = None
) -> list[Column]:
    """:func:`mod` of every column with its own modulus, in one kernel call per device.

    ``labels`` name the columns in error messages (default ``columns[i]``).
    """
    check_count("mod_values", mod_values, len(columns))
    labels = labels_for(len(columns), labels)
    divisors = [check_mod_value(m) for m in mod_values]
    values = [
        require_dtype(flat_values(c, label), np.int64, label)
        for c, label in zip(columns, labels, strict=True)
    ]
    if not values:
        return []
    namespaces = [namespace_of(v) for v in values]
    outs = [interop.empty(len(v), np.int64, xp) for v, xp in zip(values, namespaces, strict=True)]
    parameters = _division_parameters(divisors)
    for xp, group in group_indices(namespaces).items():
        run_fused(
            xp,
            kernels.fused_mod,
            "fused_mod",
            [values[i].view(np.uint64) for i in group],
            *(p[group] for p in parameters),
            [outs[i].view(np.uint64) for i in group],
        )
    return [with_values(c, o) for c, o in zip(columns, outs, strict=True)]


def check_mod_value(mod_value) -> int:
    """``mod_value`` as an int, or ``TypeError``/``ValueError`` unless it is in [1, 2**64 - 1]."""
    if isinstance(mod_value, bool) or not isinstance(mod_value, int | np.integer):
        raise TypeError(f"mod_value: expected an integer, got {type(mod_value).__name__}")
    if not 1 <= mod_value <= UINT64_MAX:
        raise ValueError(f"mod_value: must lie in [1, 2**64 - 1], got {mod_value}")
    return int(mod_value)


def _division_parameters(divisors: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """uint64 arrays of the divisors and their magic numbers and shifts (none needed for 1)."""
    magic = [kernels.modulo_magic(d) if d > 1 else (0, 0) for d in divisors]
    as_array = partial(np.array, dtype=np.uint64)
    return as_array(divisors), as_array([m for m, _ in magic]), as_array([s for _, s in magic])

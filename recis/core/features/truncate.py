"""Truncate sequences to a fixed length (RecIS ``SequenceTruncate``).

``n_dims=2``: a Ragged with one offset level; every row keeps at most ``seq_len`` values — the
last ones for ``truncate_side="left"`` (it drops from the start), the first ones for ``"right"``.
Values are not padded.

``n_dims=3``: a Ragged with two offset levels (a sequence of id lists per sample); every sequence
keeps at most ``seq_len`` inner lists, chosen the same way, then is padded with empty lists to
exactly ``seq_len``, so the result reads as ``[rows, seq_len, L]``. Inner lists are kept whole.

Weights follow their values. ``drop_nums``/``pad_nums`` count, per row (2-D) or per sequence
(3-D), the entries dropped and those missing to reach ``seq_len``. With ``check_length`` a row
longer than ``seq_len`` raises ``ValueError`` instead of being truncated.

>>> r = Ragged(np.array([1, 2, 3, 4]), np.array([0, 3, 4]))
>>> t = sequence_truncate(r, 2)
>>> t.ragged.values.tolist(), t.ragged.offsets[0].tolist(), t.drop_nums.tolist()
([2, 3, 4], [0, 2, 3], [1, 0])
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import NamedTuple

import numpy as np

from recis.core import arrays as interop
from recis.core.cuda import features as gpu_kernels
from recis.core.features.columns import (
    as_ragged,
    check_count,
    contiguous,
    group_indices,
    labels_for,
    namespace_of,
    no_weights,
    typed_list,
    weights_or_empty,
)
from recis.core.kernels import feature_truncate as kernels
from recis.core.ragged import Ragged

TRUNCATE_SIDES = ("left", "right")
N_DIMS = (2, 3)


class Truncation(NamedTuple):
    """A truncated column and its per-row counts of dropped and missing entries."""

    ragged: Ragged
    drop_nums: np.ndarray
    pad_nums: np.ndarray


class _Plan(NamedTuple):
    """One column's checked parameters."""

    column: Ragged
    seq_len: int
    keep_last: bool
    n_dims: int


def sequence_truncate(
    column: Ragged,
    seq_len: int,
    truncate_side: str = "left",
    n_dims: int = 2,
    check_length: bool = False,
) -> Truncation:
    """Truncate ``column`` to ``seq_len`` (see the module docstring)."""
    return fused_sequence_truncate(
        [column], [seq_len], [truncate_side], [n_dims], [check_length], labels=["column"]
    )[0]


def fused_sequence_truncate(
    columns: Sequence[Ragged],
    seq_lens: Sequence[int],
    truncate_sides: Sequence[str],
    n_dims: Sequence[int],
    check_length: Sequence[bool],
    labels: Sequence[str] | None = None,
) -> list[Truncation]:
    """:func:`sequence_truncate` of every column: one kernel call per (device, n_dims, value
    size).

    ``labels`` name the columns in error messages (default ``columns[i]``).
    """
    counted = {"seq_lens": seq_lens, "truncate_sides": truncate_sides, "n_dims": n_dims}
    for name, params in {**counted, "check_length": check_length}.items():
        check_count(name, params, len(columns))
    labels = labels_for(len(columns), labels)
    plans = [
        _plan(*args) for args in zip(columns, seq_lens, truncate_sides, n_dims, labels, strict=True)
    ]
    for plan, check, label in zip(plans, check_length, labels, strict=True):
        if check:
            check_row_lengths(plan.column, plan.seq_len, label)
    results: list[Truncation | None] = [None] * len(plans)
    keys = [(namespace_of(p.column), p.n_dims, p.column.values.dtype.itemsize) for p in plans]
    for (xp, dims, _), group in group_indices(keys).items():
        truncate = _TRUNCATIONS[xp is np, dims]
        for i, result in zip(group, truncate([plans[i] for i in group]), strict=True):
            results[i] = result
    return results


def check_truncate_options(seq_len, truncate_side: str, n_dims: int) -> None:
    """``ValueError``/``TypeError`` unless ``seq_len`` ≥ 1, the side and ``n_dims`` are known."""
    if isinstance(seq_len, bool) or not isinstance(seq_len, int | np.integer):
        raise TypeError(f"seq_len: expected an integer, got {type(seq_len).__name__}")
    if seq_len < 1:
        raise ValueError(f"seq_len: must be at least 1, got {seq_len}")
    if truncate_side not in TRUNCATE_SIDES:
        raise ValueError(f"truncate_side: expected one of {TRUNCATE_SIDES}, got {truncate_side!r}")
    if n_dims not in N_DIMS:
        raise ValueError(f"n_dims: expected one of {N_DIMS}, got {n_dims!r}")


def _plan(column, seq_len, truncate_side, n_dims, label) -> _Plan:
    check_truncate_options(seq_len, truncate_side, n_dims)
    column = as_ragged(column, label)
    if column.ragged_rank != n_dims - 1:
        raise ValueError(
            f"{label}: n_dims={n_dims} needs {n_dims - 1} offset level(s), got {column.ragged_rank}"
        )
    return _Plan(column, int(seq_len), truncate_side == "left", n_dims)


def check_row_lengths(column: Ragged, seq_len: int, label: str = "column") -> None:
    """``ValueError`` if a row of ``column``'s outer level holds more than ``seq_len`` entries.

    >>> check_row_lengths(Ragged(np.array([1, 2]), np.array([0, 2])), 1)
    Traceback (most recent call last):
    ...
    ValueError: column: a row holds 2 entries, more than seq_len=1 (check_length=True)
    """
    longest = as_ragged(column, label).max_length(0)
    if longest > seq_len:
        raise ValueError(
            f"{label}: a row holds {longest} entries, more than seq_len={seq_len} "
            "(check_length=True)"
        )


def _value_bits(values: np.ndarray) -> np.ndarray:
    """``values`` viewed as unsigned integers of the same size (kernels only move bits)."""
    return contiguous(values).view(f"u{values.dtype.itemsize}")


def _outputs(plan: _Plan) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Buffers for values (as long as the input), weights, drop counts and pad counts."""
    column = plan.column
    out = interop.empty(len(column.values), column.values.dtype)
    has_weights = column.weights is not None
    weights = interop.empty(len(column.values), np.float32) if has_weights else no_weights()
    rows = column.num_rows
    return out, weights, interop.empty(rows, np.int64), interop.empty(rows, np.int64)


def _truncate_rows(plans: list[_Plan]) -> list[Truncation]:
    outs = [_outputs(p) for p in plans]
    offsets = [interop.empty(p.column.num_rows + 1, np.int64) for p in plans]
    kernels.fused_truncate_rows(
        typed_list([_value_bits(p.column.values) for p in plans]),
        typed_list([p.column.offsets[0] for p in plans]),
        typed_list([weights_or_empty(p.column) for p in plans]),
        np.array([p.seq_len for p in plans], np.int64),
        np.array([p.keep_last for p in plans], np.bool_),
        typed_list([_value_bits(o[0]) for o in outs]),
        typed_list(offsets),
        *(typed_list([o[k] for o in outs]) for k in (1, 2, 3)),
    )
    return [_result(p, o, (offs,)) for p, o, offs in zip(plans, outs, offsets, strict=True)]


def _truncate_sequences(plans: list[_Plan]) -> list[Truncation]:
    outs = [_outputs(p) for p in plans]
    inner = [interop.empty(p.column.num_rows * p.seq_len + 1, np.int64) for p in plans]
    kernels.fused_truncate_sequences(
        typed_list([_value_bits(p.column.values) for p in plans]),
        typed_list([p.column.offsets[0] for p in plans]),
        typed_list([p.column.offsets[1] for p in plans]),
        typed_list([weights_or_empty(p.column) for p in plans]),
        np.array([p.seq_len for p in plans], np.int64),
        np.array([p.keep_last for p in plans], np.bool_),
        typed_list([_value_bits(o[0]) for o in outs]),
        typed_list(inner),
        *(typed_list([o[k] for o in outs]) for k in (1, 2, 3)),
    )
    return [
        _result(p, o, (_regular_offsets(p.column.num_rows, p.seq_len), offs))
        for p, o, offs in zip(plans, outs, inner, strict=True)
    ]


def _truncate_rows_on_gpu(plans: list[_Plan]) -> list[Truncation]:
    truncated = gpu_kernels.fused_truncate_rows(
        [(_value_bits(p.column.values), *_device_parts(p.column)) for p in plans],
        [p.seq_len for p in plans],
        [p.keep_last for p in plans],
    )
    return [
        Truncation(Ragged(values.view(p.column.values.dtype), (offsets,), weights), drops, pads)
        for p, (values, offsets, weights, drops, pads) in zip(plans, truncated, strict=True)
    ]


def _truncate_sequences_on_gpu(plans: list[_Plan]) -> list[Truncation]:
    truncated = gpu_kernels.fused_truncate_sequences(
        [(_value_bits(p.column.values), *_device_parts(p.column)) for p in plans],
        [p.seq_len for p in plans],
        [p.keep_last for p in plans],
    )
    results = []
    for p, (values, inner, weights, drops, pads) in zip(plans, truncated, strict=True):
        outer = _regular_offsets(p.column.num_rows, p.seq_len, namespace_of(p.column))
        ragged = Ragged(values.view(p.column.values.dtype), (outer, inner), weights)
        results.append(Truncation(ragged, drops, pads))
    return results


def _device_parts(column: Ragged) -> tuple:
    """The contiguous offsets (every level) and weights of a CuPy column."""
    return (*(contiguous(o) for o in column.offsets), contiguous(column.weights))


def _regular_offsets(rows: int, width: int, xp: ModuleType = np) -> np.ndarray:
    offsets = interop.empty(rows + 1, np.int64, xp)
    offsets[:] = xp.arange(rows + 1, dtype=np.int64) * width
    return offsets


def _result(plan: _Plan, outs, offsets: tuple[np.ndarray, ...]) -> Truncation:
    values, weights, drops, pads = outs
    total = int(offsets[-1][-1])
    kept_weights = weights[:total] if plan.column.weights is not None else None
    return Truncation(Ragged(values[:total], offsets, kept_weights), drops, pads)


# (on the CPU, n_dims) -> the truncation of a group of columns
_TRUNCATIONS = {
    (True, 2): _truncate_rows,
    (True, 3): _truncate_sequences,
    (False, 2): _truncate_rows_on_gpu,
    (False, 3): _truncate_sequences_on_gpu,
}

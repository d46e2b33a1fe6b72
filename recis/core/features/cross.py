"""Cross two id columns row by row (RecIS ``FeatureCross``).

For every row, each side's ids are made distinct (first-occurrence order, weights of repeated
ids summed; a side without weights counts 1 per occurrence). The row's output is the Cartesian
product in left-major order — for each distinct x in order, each distinct y in order — hashed
with MurmurHash64A (seed 0) over the 16 little-endian bytes of ``(x, y)``, with weight
``w_x · w_y`` (float32; the output always has weights). Empty rows stay empty.

Both columns are int64 Raggeds with the same number of rows; with two offset levels the cross is
taken per inner row and the outer offsets must agree. Unlike RecIS, which silently crosses only
the first ``min(rows_x, rows_y)`` rows, differing row counts raise ``ValueError``.

>>> x = Ragged(np.array([1001, 1002, 1003]), np.array([0, 1, 2, 3]))
>>> y = Ragged(np.array([1, 2, 3]), np.array([0, 1, 2, 3]))
>>> feature_cross(x, y).values.tolist()
[-7808879811642834040, -4967483181219983279, 1752425377096056168]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from recis.core import arrays as interop
from recis.core.cuda import features as gpu_kernels
from recis.core.features.columns import (
    as_ragged,
    contiguous,
    group_indices,
    labels_for,
    namespace_of,
    require_dtype,
    typed_list,
    weights_or_empty,
)
from recis.core.kernels import feature_cross as kernels
from recis.core.ragged import Ragged
from recis.core.string_hash import murmur_pair


def feature_cross(x: Ragged, y: Ragged) -> Ragged:
    """The crossed ids of ``x`` and ``y`` (see the module docstring)."""
    return fused_feature_cross([(x, y)], labels=["columns"])[0]


def fused_feature_cross(
    pairs: Sequence[tuple[Ragged, Ragged]], labels: Sequence[str] | None = None
) -> list[Ragged]:
    """:func:`feature_cross` of every ``(x, y)`` pair, in four kernel calls for all pairs (per
    device).

    ``labels`` name the pairs in error messages (default ``columns[i]``).
    """
    labels = labels_for(len(pairs), labels)
    checked = [_check_pair(pair, label) for pair, label in zip(pairs, labels, strict=True)]
    results: list[Ragged | None] = [None] * len(checked)
    for xp, group in group_indices([namespace_of(x) for x, _ in checked]).items():
        cross = _cross_on_cpu if xp is np else _cross_on_gpu
        for i, result in zip(group, cross([checked[i] for i in group]), strict=True):
            results[i] = result
    return results


def _cross_on_cpu(checked: list[tuple[Ragged, Ragged]]) -> list[Ragged]:
    sides = [x for x, _ in checked] + [y for _, y in checked]
    values, offsets, weights = _unique_rows(sides)
    count = len(checked)
    cross_offsets = [interop.empty(len(x.offsets[-1]), np.int64) for x, _ in checked]
    kernels.fused_cross_offsets(
        typed_list(offsets[:count]), typed_list(offsets[count:]), typed_list(cross_offsets)
    )
    bases = np.cumsum([0] + [int(o[-1]) for o in cross_offsets])
    left, right = interop.empty(bases[-1], np.int64), interop.empty(bases[-1], np.int64)
    cross_weights = interop.empty(bases[-1], np.float32)
    kernels.fused_cross_rows(
        *(typed_list(part[:count]) for part in (values, offsets, weights)),
        *(typed_list(part[count:]) for part in (values, offsets, weights)),
        typed_list(cross_offsets),
        bases,
        left,
        right,
        cross_weights,
    )
    hashes = murmur_pair(left, right)
    return [
        Ragged(hashes[start:end], (*x.offsets[:-1], row_offsets), cross_weights[start:end])
        for (x, _), row_offsets, start, end in zip(
            checked, cross_offsets, bases[:-1], bases[1:], strict=True
        )
    ]


def _cross_on_gpu(checked: list[tuple[Ragged, Ragged]]) -> list[Ragged]:
    def side(ragged: Ragged) -> tuple:
        return tuple(contiguous(a) for a in (ragged.values, ragged.offsets[-1], ragged.weights))

    crossed = gpu_kernels.fused_feature_cross([(side(x), side(y)) for x, y in checked])
    return [
        Ragged(hashes, (*x.offsets[:-1], offsets), weights)
        for (x, _), (hashes, offsets, weights) in zip(checked, crossed, strict=True)
    ]


def _check_pair(pair, label: str) -> tuple[Ragged, Ragged]:
    if len(pair) != 2:
        raise ValueError(f"{label}: expected two columns to cross, got {len(pair)}")
    x, y = (as_ragged(side, f"{label}[{i}]") for i, side in enumerate(pair))
    for i, side in enumerate((x, y)):
        require_dtype(side.values, np.int64, f"{label}[{i}]")
    if namespace_of(x) is not namespace_of(y):
        raise TypeError(f"{label}: one column is on the GPU, the other on the CPU")
    if x.ragged_rank != y.ragged_rank:
        raise ValueError(f"{label}: offset levels differ ({x.ragged_rank} and {y.ragged_rank})")
    if x.num_rows != y.num_rows:
        raise ValueError(f"{label}: row counts differ ({x.num_rows} and {y.num_rows})")
    xp = namespace_of(x)
    if not all(xp.array_equal(a, b) for a, b in zip(x.offsets[:-1], y.offsets[:-1], strict=True)):
        raise ValueError(f"{label}: outer offsets differ")
    return x, y


def _unique_rows(sides: list[Ragged]) -> tuple[list, list, list]:
    """Every side's rows made distinct (one kernel call): values, offsets, weights per side."""
    values = [interop.empty(len(s.values), np.int64) for s in sides]
    offsets = [interop.empty(len(s.offsets[-1]), np.int64) for s in sides]
    weights = [interop.empty(len(s.values), np.float32) for s in sides]
    kernels.fused_unique_rows(
        typed_list([np.ascontiguousarray(s.values) for s in sides]),
        typed_list([s.offsets[-1] for s in sides]),
        typed_list([weights_or_empty(s) for s in sides]),
        typed_list(values),
        typed_list(offsets),
        typed_list(weights),
    )
    return values, offsets, weights

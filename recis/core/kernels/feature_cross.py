"""Fused feature-cross kernels: per-row distinct ids, then the per-row Cartesian product.

Arguments are ``numba.typed.List``\\ s with one entry per feature (plain lists for the twins).
``weights[f]`` is either empty (every value weighs 1) or one float32 per value. Each kernel has a
NumPy twin ``<name>_reference`` with the same signature.

>>> from numba.typed import List
>>> out, out_offsets, out_weights = np.empty(3, np.int64), np.empty(2, np.int64), np.empty(3,
...     np.float32)
>>> fused_unique_rows(List([np.array([5, 3, 5])]), List([np.array([0, 3])]),
...     List([np.empty(0, np.float32)]), List([out]), List([out_offsets]), List([out_weights]))
>>> out[:out_offsets[-1]].tolist(), out_weights[:out_offsets[-1]].tolist()
([5, 3], [2.0, 1.0])
"""

from __future__ import annotations

import numba
import numpy as np

SMALL_ROW = 64  # rows up to this length are deduplicated by a linear scan, longer ones by sorting


@numba.njit(cache=True)
def fused_unique_rows(values, offsets, weights, out_values, out_offsets, out_weights):
    """Distinct values of every row in order of first occurrence, with their summed weights.

    Weights are summed in float32 in order of occurrence. Output buffers hold as many entries as
    the input; ``out_offsets[f]`` delimits the written prefix.
    """
    for f in range(len(values)):
        column, row_offsets, column_weights = values[f], offsets[f], weights[f]
        result, result_offsets, result_weights = out_values[f], out_offsets[f], out_weights[f]
        result_offsets[0] = 0
        for row in range(row_offsets.shape[0] - 1):
            start, end = row_offsets[row], row_offsets[row + 1]
            cursor = result_offsets[row]
            if end - start <= SMALL_ROW:
                count = _unique_by_scan(
                    column, column_weights, start, end, result, result_weights, cursor
                )
            else:
                count = _unique_by_sort(
                    column, column_weights, start, end, result, result_weights, cursor
                )
            result_offsets[row + 1] = cursor + count


@numba.njit
def _weight(weights, i):
    return weights[i] if weights.shape[0] > 0 else np.float32(1.0)


@numba.njit
def _unique_by_scan(values, weights, start, end, out, out_weights, cursor):
    """Deduplicate ``values[start:end]`` into ``out[cursor:]``; return the distinct count."""
    count = 0
    for i in range(start, end):
        slot = cursor
        while slot < cursor + count and out[slot] != values[i]:
            slot += 1
        if slot == cursor + count:
            out[slot] = values[i]
            out_weights[slot] = np.float32(0.0)
            count += 1
        out_weights[slot] += _weight(weights, i)
    return count


@numba.njit
def _unique_by_sort(values, weights, start, end, out, out_weights, cursor):
    """Like :func:`_unique_by_scan`, in O(n log n) through a stable sort of the row."""
    order = np.argsort(values[start:end], kind="mergesort") + start
    firsts = np.empty(order.shape[0], np.int64)
    sums = np.empty(order.shape[0], np.float32)
    groups = 0
    for k in range(order.shape[0]):
        i = order[k]
        if k == 0 or values[i] != values[order[k - 1]]:
            firsts[groups], sums[groups] = i, np.float32(0.0)
            groups += 1
        sums[groups - 1] += _weight(weights, i)
    by_first = np.argsort(firsts[:groups])
    for g in range(groups):
        out[cursor + g] = values[firsts[by_first[g]]]
        out_weights[cursor + g] = sums[by_first[g]]
    return groups


def fused_unique_rows_reference(values, offsets, weights, out_values, out_offsets, out_weights):
    """Twin of :func:`fused_unique_rows`."""
    for f in range(len(values)):
        out_offsets[f][0] = 0
        cursor = 0
        for row in range(len(offsets[f]) - 1):
            start, end = offsets[f][row], offsets[f][row + 1]
            sums: dict[int, np.float32] = {}
            for i in range(start, end):
                weight = weights[f][i] if len(weights[f]) else np.float32(1.0)
                sums[values[f][i]] = sums.get(values[f][i], np.float32(0.0)) + weight
            out_values[f][cursor : cursor + len(sums)] = list(sums)
            out_weights[f][cursor : cursor + len(sums)] = list(sums.values())
            cursor += len(sums)
            out_offsets[f][row + 1] = cursor


@numba.njit(cache=True)
def fused_cross_offsets(left_offsets, right_offsets, out_offsets):
    """``out_offsets[f]``: row offsets of the products, row ``r`` holding ``|left_r|·|right_r|``."""
    for f in range(len(left_offsets)):
        left, right, out = left_offsets[f], right_offsets[f], out_offsets[f]
        out[0] = 0
        for row in range(out.shape[0] - 1):
            pairs = (left[row + 1] - left[row]) * (right[row + 1] - right[row])
            out[row + 1] = out[row] + pairs


def fused_cross_offsets_reference(left_offsets, right_offsets, out_offsets):
    """Twin of :func:`fused_cross_offsets`."""
    for left, right, out in zip(left_offsets, right_offsets, out_offsets, strict=True):
        out[0] = 0
        np.cumsum(np.diff(left) * np.diff(right), out=out[1:])


@numba.njit(cache=True)
def fused_cross_rows(
    left_values,
    left_offsets,
    left_weights,
    right_values,
    right_offsets,
    right_weights,
    cross_offsets,
    bases,
    out_left,
    out_right,
    out_weights,
):
    """Write every row's pairs (left-major) at ``bases[f] + cross_offsets[f][row]``.

    ``out_left``/``out_right`` (int64) and ``out_weights`` (float32, ``w_left · w_right``) are flat
    arrays shared by all features; ``bases[f]`` is where feature ``f`` starts.
    """
    for f in range(len(left_values)):
        left, left_rows, left_w = left_values[f], left_offsets[f], left_weights[f]
        right, right_rows, right_w = right_values[f], right_offsets[f], right_weights[f]
        k = bases[f]
        for row in range(cross_offsets[f].shape[0] - 1):
            for i in range(left_rows[row], left_rows[row + 1]):
                for j in range(right_rows[row], right_rows[row + 1]):
                    out_left[k], out_right[k] = left[i], right[j]
                    out_weights[k] = left_w[i] * right_w[j]
                    k += 1


def fused_cross_rows_reference(
    left_values,
    left_offsets,
    left_weights,
    right_values,
    right_offsets,
    right_weights,
    cross_offsets,
    bases,
    out_left,
    out_right,
    out_weights,
):
    """Twin of :func:`fused_cross_rows`."""
    for f in range(len(left_values)):
        k = bases[f]
        for row in range(len(cross_offsets[f]) - 1):
            left = slice(left_offsets[f][row], left_offsets[f][row + 1])
            right = slice(right_offsets[f][row], right_offsets[f][row + 1])
            count = (left.stop - left.start) * (right.stop - right.start)
            pairs = np.s_[k : k + count]
            out_left[pairs] = np.repeat(left_values[f][left], right.stop - right.start)
            out_right[pairs] = np.tile(right_values[f][right], left.stop - left.start)
            product = np.multiply.outer(left_weights[f][left], right_weights[f][right])
            out_weights[pairs] = product.reshape(-1)
            k += count

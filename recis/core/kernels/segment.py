"""Embedding combiners over segments, fused with the gather of deduplicated rows.

Shared arguments: ``rows`` [U, D] float32 (the unique rows), ``index`` [N] int64 (the row of each
id), ``offsets`` [B + 1] int64 (segment ``b`` holds ids ``offsets[b]:offsets[b + 1]``) and
``weights`` [N] float32. Kernels overwrite every element of their output; they accumulate in id
order, so results do not depend on the number of threads.

The forward kernels run one segment per iteration of a parallel loop. The backward kernels
scatter into unique rows: they split the rows into ``num_parts`` contiguous ranges (best: the number
of threads), and each part walks all ids and adds only those whose row it owns, so no two threads
write the same row and no atomics are needed.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(parallel=True, cache=True)
def segment_pool(rows, index, offsets, weights, normalize, out):
    """``out[b] = Σ w_i·rows[index[i]]`` over segment ``b``, divided by ``Σ w_i`` if ``normalize``.

    With ``normalize``, a segment whose weights sum to 0 (for instance an empty one) gives zeros.
    """
    for segment in numba.prange(out.shape[0]):
        out[segment, :] = 0
        for i in range(offsets[segment], offsets[segment + 1]):
            _add_scaled(out[segment], weights[i], rows[index[i]])
        if normalize:
            total = _weight_sum(weights, offsets, segment)
            if total == 0:
                out[segment, :] = 0
            else:
                out[segment, :] /= total


@numba.njit(parallel=True, cache=True)
def segment_tile(rows, index, offsets, weights, out):
    """``out[b, j] = w_i·rows[index[i]]`` for the ``j``-th id ``i`` of segment ``b``.

    ``out`` is [B, L, D]: ids past the first L of a segment are dropped, missing ones give zeros.
    """
    for segment in numba.prange(out.shape[0]):
        start = offsets[segment]
        count = min(offsets[segment + 1] - start, out.shape[1])
        for j in range(count):
            weight = weights[start + j]
            row = rows[index[start + j]]
            for d in range(out.shape[2]):
                out[segment, j, d] = weight * row[d]
        out[segment, count:, :] = 0


@numba.njit(parallel=True, cache=True)
def segment_pool_backward(grad_out, index, offsets, weights, normalize, num_parts, grad_rows):
    """Gradient of :func:`segment_pool` w.r.t. ``rows``: ``grad_rows`` [U, D] from ``grad_out``."""
    for part in numba.prange(num_parts):
        first, stop = _part_bounds(grad_rows.shape[0], part, num_parts)
        grad_rows[first:stop, :] = 0
        for segment in range(grad_out.shape[0]):
            total = _weight_sum(weights, offsets, segment) if normalize else np.float32(1)
            if total == 0:
                continue
            for i in range(offsets[segment], offsets[segment + 1]):
                if first <= index[i] < stop:
                    _add_scaled(grad_rows[index[i]], weights[i] / total, grad_out[segment])


@numba.njit(parallel=True, cache=True)
def segment_tile_backward(grad_out, index, offsets, weights, num_parts, grad_rows):
    """Gradient of :func:`segment_tile` w.r.t. ``rows``: ``grad_rows`` [U, D] from ``grad_out``."""
    for part in numba.prange(num_parts):
        first, stop = _part_bounds(grad_rows.shape[0], part, num_parts)
        grad_rows[first:stop, :] = 0
        for segment in range(grad_out.shape[0]):
            start = offsets[segment]
            for j in range(min(offsets[segment + 1] - start, grad_out.shape[1])):
                row = index[start + j]
                if first <= row < stop:
                    _add_scaled(grad_rows[row], weights[start + j], grad_out[segment, j])


@numba.njit(cache=True, inline="always")
def _add_scaled(target, scale, source):
    for d in range(target.shape[0]):
        target[d] += scale * source[d]


@numba.njit(cache=True, inline="always")
def _weight_sum(weights, offsets, segment):
    total = np.float32(0)
    for i in range(offsets[segment], offsets[segment + 1]):
        total += weights[i]
    return total


@numba.njit(cache=True, inline="always")
def _part_bounds(size, part, num_parts):
    return size * part // num_parts, size * (part + 1) // num_parts


def segment_pool_reference(rows, index, offsets, weights, normalize, out):
    """NumPy twin of :func:`segment_pool`."""
    segment_ids = _segment_ids(offsets)
    out[...] = 0
    np.add.at(out, segment_ids, weights[:, None] * rows[index])
    if normalize:
        totals = _weight_sums(weights, segment_ids, len(out))
        np.divide(out, totals[:, None], out=out, where=totals[:, None] != 0)
        out[totals == 0] = 0


def segment_tile_reference(rows, index, offsets, weights, out):
    """NumPy twin of :func:`segment_tile`."""
    segment_ids, positions = _segment_ids(offsets), _positions(offsets)
    kept = positions < out.shape[1]
    out[...] = 0
    out[segment_ids[kept], positions[kept]] = weights[kept, None] * rows[index[kept]]


def segment_pool_backward_reference(
    grad_out, index, offsets, weights, normalize, num_parts, grad_rows
):
    """NumPy twin of :func:`segment_pool_backward` (``num_parts`` does not change the result)."""
    segment_ids = _segment_ids(offsets)
    scales = weights
    if normalize:
        totals = _weight_sums(weights, segment_ids, len(grad_out))[segment_ids]
        scales = np.divide(weights, totals, out=np.zeros_like(weights), where=totals != 0)
    grad_rows[...] = 0
    np.add.at(grad_rows, index, scales[:, None] * grad_out[segment_ids])


def segment_tile_backward_reference(grad_out, index, offsets, weights, num_parts, grad_rows):
    """NumPy twin of :func:`segment_tile_backward` (``num_parts`` does not change the result)."""
    segment_ids, positions = _segment_ids(offsets), _positions(offsets)
    kept = positions < grad_out.shape[1]
    grad_rows[...] = 0
    contributions = weights[kept, None] * grad_out[segment_ids[kept], positions[kept]]
    np.add.at(grad_rows, index[kept], contributions)


def _segment_ids(offsets):
    return np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))


def _positions(offsets):
    """Position of every id within its segment."""
    return np.arange(offsets[-1]) - np.repeat(offsets[:-1], np.diff(offsets))


def _weight_sums(weights, segment_ids, num_segments):
    totals = np.zeros(num_segments, dtype=np.float32)
    np.add.at(totals, segment_ids, weights)
    return totals

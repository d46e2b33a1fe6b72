"""Embedding combiners and per-row gradient sums on the GPU (``cuda/segment.cu``), on CuPy arrays.

:func:`segment_reduce` and :func:`segment_reduce_backward` are the GPU halves of
:mod:`recis.core.segment` (which validates ``mode`` and ``tile_len`` and dispatches here for CuPy
rows); :func:`sum_by_row` is the GPU half of ``GradientBuffer.summed``. Every sum runs in id order
with the CPU's roundings, so results equal the CPU's bit for bit.

Nothing here waits for the device. Index entries and offsets are not checked on the host: an
index outside ``[0, num_rows)`` reads NaN in the forward pass and is dropped in the backward
pass.

>>> group_size(4), group_size(24), group_size(300)
(4, 32, 32)
"""

from __future__ import annotations

import numpy as np

from recis.core.arrays import array_module
from recis.core.cuda import loader
from recis.core.cuda.sort import group_by_key, stable_argsort
from recis.core.dedupe import first_occurrences, occurrence_counts

SOURCE = "segment.cu"
NULL = np.uint64(0)  # a null pointer argument
ROW_KERNELS = {np.dtype(t): np.dtype(t).name for t in (np.float32, np.float64, np.float16)}


def group_size(dim: int) -> int:
    """Threads per segment or row: the power of two covering ``dim``, at most a warp (32)."""
    return min(32, 1 << max(dim - 1, 0).bit_length())


def segment_reduce(rows, index, offsets, weights, mode: str, tile_len: int | None):
    """``recis.core.segment.segment_reduce`` for CuPy ``rows`` (mode and tile_len checked)."""
    cupy = loader.require_cupy("segment_reduce on the GPU")
    rows = _check_rows(cupy, rows)
    index, offsets, weights = _check_segments(cupy, index, offsets, weights)
    num_segments, dim = offsets.size - 1, rows.shape[1]
    args = (rows, np.int64(rows.shape[0]), np.int64(dim), index, np.int64(index.size), offsets)
    suffix = ROW_KERNELS[rows.dtype]
    if mode == "tile":
        out = cupy.empty((num_segments, tile_len, dim), np.float32)
        total = out.size
        args += (weights, np.int64(tile_len), out, np.int64(total))
        _run(f"segment_tile_{suffix}", total, args)
        return out
    out = cupy.empty((num_segments, dim), np.float32)
    group = group_size(dim)
    total = num_segments * group
    args += (weights, np.int32(mode == "mean"), np.int64(group), out, np.int64(total))
    _run(f"segment_pool_{suffix}", total, args)
    return out


def segment_reduce_backward(
    grad_out, index, offsets, weights, mode: str, num_rows: int, tile_len: int | None
):
    """``recis.core.segment.segment_reduce_backward`` for CuPy ``grad_out``: [num_rows, D].

    Every id gets its source gradient row and scale, ids are grouped by row (each row keeping id
    order, :func:`~recis.core.cuda.sort.group_by_key`), and each row sums its contributions in
    that order.
    """
    cupy = loader.require_cupy("segment_reduce_backward on the GPU")
    index, offsets, weights = _check_segments(cupy, index, offsets, weights)
    num_segments = offsets.size - 1
    grad_out = _check_grad(cupy, grad_out, num_segments, tile_len)
    dim = grad_out.shape[-1]
    source = cupy.full(index.size, -1, np.int64)
    scale = cupy.empty(index.size, np.float32)
    group = 32
    total = num_segments * group
    normalize = np.int32(mode == "mean")
    args = (offsets, np.int64(num_segments), np.int64(index.size), weights, normalize)
    args += (np.int64(tile_len or 0), np.int64(group), source, scale, np.int64(total))
    _run("segment_sources", total, args)
    order, begin, end = group_by_key(index, num_rows)  # out-of-range ids are left out
    values = grad_out.reshape(-1, dim)
    return _accumulate(cupy, order, begin, end, (source, scale), values, 1)


def sum_by_row(rows, values, divisor: int):
    """Rows >= 0 of ``rows`` (CuPy int64), each once in order of first occurrence, and the sums
    of their ``values`` rows (float32 ``[n, D]``, summed in position order) divided by
    ``divisor`` unless it is 1: ``GradientBuffer.summed`` on the GPU. The result keeps one
    entry per entry of ``rows``, with row -1 and a zero sum where there is no row (see
    :func:`row_groups`), so nothing waits for the device."""
    cupy = loader.require_cupy("summing gradients on the GPU")
    rows = cupy.ascontiguousarray(rows, np.int64)
    values = cupy.ascontiguousarray(values, np.float32)
    distinct, order, begin, end = row_groups(rows)
    return distinct, _accumulate(cupy, order, begin, end, (NULL, NULL), values, divisor)


def row_groups(rows):
    """``rows`` (int64, NumPy or CuPy) grouped without sorting them and without reading a size
    back: the distinct rows in order of first occurrence (hashed, as
    :func:`~recis.core.dedupe.first_occurrences`), padded to ``len(rows)`` with -1, which also
    stands for the group of the rows of -1; the positions grouped by row, each group in position
    order; and each group's ``[begin, end)`` in them, empty where the row is -1.

    >>> [a.tolist() for a in row_groups(np.array([7, -1, 3, 7, 7]))]
    [[7, -1, 3, -1, -1], [0, 3, 4, 1, 2], [0, 4, 4, 5, 5], [3, 4, 5, 5, 5]]
    """
    xp, n = array_module(rows), rows.size
    first, inverse = first_occurrences(rows, padded=True)
    counts = occurrence_counts(inverse, n)
    on_cpu = xp is np
    order = np.argsort(inverse, kind="stable") if on_cpu else stable_argsort(inverse, n)
    end = xp.cumsum(counts)
    distinct = xp.where(counts > 0, rows[first], -1)
    begin = xp.where(distinct >= 0, end - counts, end)  # the rows of -1 are left out
    return distinct, order, begin, end


def _accumulate(cupy, order, begin, end, sources: tuple, values, divisor: int):
    """Row u of the result: Σ over k in [begin[u], end[u]) of the contribution of id order[k]."""
    dim = values.shape[1]
    out = cupy.empty((begin.size, dim), np.float32)
    group = group_size(dim)
    total = begin.size * group
    ranges = (order, cupy.ascontiguousarray(begin), cupy.ascontiguousarray(end))
    scaling = (np.int32(divisor != 1), np.float32(divisor))
    args = (*ranges, *sources, values, np.int64(dim), np.int64(group), *scaling, out)
    _run("accumulate_rows", total, (*args, np.int64(total)))
    return out


def _check_rows(cupy, rows):
    if rows.ndim != 2:
        raise TypeError("rows: expected a 2-D NumPy or CuPy array")
    if rows.dtype not in ROW_KERNELS:
        raise TypeError(f"rows: expected float16, float32 or float64 on the GPU, got {rows.dtype}")
    return cupy.ascontiguousarray(rows)


def _check_segments(cupy, index, offsets, weights):
    """``index``/``offsets``/``weights`` as contiguous int64, int64 and float32 (or NULL)."""
    index, offsets = cupy.asarray(index), cupy.asarray(offsets)
    if index.ndim != 1 or index.dtype.kind not in "iu":
        raise TypeError("index: expected a 1-D integer array")
    if offsets.ndim != 1 or offsets.dtype.kind not in "iu" or offsets.size == 0:
        raise TypeError("offsets: expected a 1-D integer array of at least one offset")
    index = cupy.ascontiguousarray(index, np.int64)
    offsets = cupy.ascontiguousarray(offsets, np.int64)
    if weights is None:
        return index, offsets, NULL
    weights = cupy.asarray(weights)
    if weights.ndim != 1 or weights.dtype != np.float32:
        raise TypeError("weights: expected a 1-D float32 array or None")
    if weights.size != index.size:
        raise ValueError(f"weights: expected {index.size} weights (one per id), got {weights.size}")
    return index, offsets, cupy.ascontiguousarray(weights)


def _check_grad(cupy, grad_out, num_segments: int, tile_len: int | None):
    leading = (num_segments,) if tile_len is None else (num_segments, tile_len)
    if grad_out.ndim != len(leading) + 1 or grad_out.shape[:-1] != leading:
        raise ValueError(f"grad_out: expected shape {(*leading, 'D')}, got {grad_out.shape}")
    if grad_out.dtype not in ROW_KERNELS:
        raise TypeError(f"grad_out: expected float16, float32 or float64, got {grad_out.dtype}")
    return cupy.ascontiguousarray(grad_out, np.float32)


def _run(name: str, total: int, args: tuple) -> None:
    if total:
        loader.launch(loader.kernel(SOURCE, name), total, args)

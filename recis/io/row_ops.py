"""Row-wise operations on batch columns: dense arrays (rows on axis 0) and :class:`Ragged`.

Packing cuts fragments into batches and the shuffle buffer permutes rows; both only need to
gather row ranges and to take rows by index. Results are new, writable arrays (64-byte aligned
for numeric data), never views of the input.

>>> r = Ragged(np.array([1, 2, 3, 4]), np.array([0, 1, 3, 4]))
>>> gather_ranges([(r, 1, 3)]).offsets
(array([0, 2, 3]),)
>>> take_rows(r, np.array([2, 0])).values
array([4, 1])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from recis.core.arrays import empty
from recis.core.ragged import Ragged

Column = np.ndarray | Ragged
Allocate = Callable[[tuple[int, ...], np.dtype], np.ndarray]  # (shape, dtype) -> new array


def num_rows(column: Column) -> int:
    """Number of rows (the outermost dimension) of a column."""
    return column.num_rows if isinstance(column, Ragged) else len(column)


def gather_ranges(
    pieces: Sequence[tuple[Column, int, int]], allocate: Allocate | None = None
) -> Column:
    """Rows ``[start, stop)`` of every ``(column, start, stop)`` piece, concatenated in order.

    All pieces are of one kind (dense arrays of one dtype and row shape, or ragged arrays with
    the same number of offset levels and the same weights presence). ``allocate(shape, dtype)``
    makes the result's numeric arrays (default: 64-byte aligned host memory); arrays of Python
    objects are always plain NumPy arrays.

    >>> gather_ranges([(np.array([1, 2, 3]), 1, 3), (np.array([4, 5]), 0, 1)])
    array([2, 3, 4])
    """
    allocate = _allocator(allocate)
    if isinstance(pieces[0][0], Ragged):
        return _gather_ragged(pieces, allocate)
    return _concatenate([column[start:stop] for column, start, stop in pieces], allocate)


def take_rows(column: Column, rows: np.ndarray) -> Column:
    """The rows of ``column`` at the int64 indices ``rows``, in that order.

    >>> take_rows(np.array([[1, 2], [3, 4]]), np.array([1, 1])).tolist()
    [[3, 4], [3, 4]]
    """
    if isinstance(column, Ragged):
        return _take_ragged(column, rows)
    return _take(column, rows)


def _gather_ragged(pieces: Sequence[tuple[Ragged, int, int]], allocate: Allocate) -> Ragged:
    raggeds = [piece[0] for piece in pieces]
    ranges = [(start, stop) for _, start, stop in pieces]
    offsets = []
    for level in range(raggeds[0].ragged_rank):
        level_offsets = [r.offsets[level] for r in raggeds]
        offsets.append(_concatenate_offsets(level_offsets, ranges, allocate))
        ranges = [
            (int(o[start]), int(o[stop]))
            for o, (start, stop) in zip(level_offsets, ranges, strict=True)
        ]
    parts = list(zip(raggeds, ranges, strict=True))
    values = _concatenate([r.values[a:b] for r, (a, b) in parts], allocate)
    weights = None
    if raggeds[0].weights is not None:
        weights = _concatenate([r.weights[a:b] for r, (a, b) in parts], allocate)
    return Ragged(values, tuple(offsets), weights)


def _concatenate_offsets(
    level_offsets: list[np.ndarray], ranges: list[tuple[int, int]], allocate: Allocate
):
    """Offsets of the concatenation of rows ``[start, stop)`` of every offsets array."""
    out = allocate((sum(stop - start for start, stop in ranges) + 1,), np.dtype(np.int64))
    out[0] = 0
    row, base = 0, 0
    for offsets, (start, stop) in zip(level_offsets, ranges, strict=True):
        part = offsets[start : stop + 1]
        np.add(part[1:], base - part[0], out=out[row + 1 : row + 1 + stop - start])
        row += stop - start
        base += int(part[-1] - part[0])
    return out


def _take_ragged(ragged: Ragged, rows: np.ndarray) -> Ragged:
    offsets = []
    for level_offsets in ragged.offsets:
        starts = level_offsets[rows]
        lengths = level_offsets[rows + 1] - starts
        new_offsets = empty(len(rows) + 1, np.int64)
        new_offsets[0] = 0
        np.cumsum(lengths, out=new_offsets[1:])
        offsets.append(new_offsets)
        rows = np.repeat(starts - new_offsets[:-1], lengths) + np.arange(new_offsets[-1])
    weights = None if ragged.weights is None else _take(ragged.weights, rows)
    return Ragged(_take(ragged.values, rows), tuple(offsets), weights)


def _allocate(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    return np.empty(shape, dtype) if dtype.hasobject else empty(shape, dtype)


def _allocator(allocate: Allocate | None) -> Allocate:
    """``allocate`` for numeric arrays (default: aligned host memory), NumPy for object arrays."""
    if allocate is None:
        return _allocate

    def allocate_numeric(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        return np.empty(shape, dtype) if dtype.hasobject else allocate(shape, dtype)

    return allocate_numeric


def _concatenate(arrays: list[np.ndarray], allocate: Allocate = _allocate) -> np.ndarray:
    first = arrays[0]
    out = allocate((sum(len(a) for a in arrays), *first.shape[1:]), first.dtype)
    return np.concatenate(arrays, out=out)


def _take(array: np.ndarray, rows: np.ndarray) -> np.ndarray:
    out = _allocate((len(rows), *array.shape[1:]), array.dtype)
    return np.take(array, rows, axis=0, out=out)

"""Exact batches across fragment boundaries, each tagged with the resume position after it.

Chunks (converted fragments, or permuted shuffle windows) arrive in stream order; the packer cuts
them into batches of exactly ``batch_size`` rows, a batch taking rows from as many chunks as it
needs. The last rows of the epoch form a smaller batch unless ``drop_remainder``. Every batch
carries the :class:`Cursor` of the row after it, and the stream ends with :class:`EpochEnd`
carrying the start of the next epoch, so a consumer's position is always the one of the last
item it received.

>>> import numpy as np
>>> chunk = Chunk({"x": np.arange(5)}, 5, Cursor(), Cursor(fragment=1), by_row=True)
>>> *batches, end = pack([chunk], 2, drop_remainder=False, next_epoch=Cursor(1))
>>> [batch.columns["x"].tolist() for batch in batches], end
([[0, 1], [2, 3], [4]], EpochEnd(cursor=Cursor(epoch=1, fragment=0, row=0, window=0, skip=0)))
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from recis.io.cursor import Cursor
from recis.io.row_ops import Allocate, Column, gather_ranges


@dataclass(frozen=True)
class Chunk:
    """``num_rows`` consecutive rows of the stream; positions advance by row or by skip."""

    columns: dict[str, Column]
    num_rows: int
    start: Cursor
    end: Cursor
    by_row: bool

    def cursor_after(self, rows: int) -> Cursor:
        """The position after the first ``rows`` rows of this chunk."""
        return self.end if rows >= self.num_rows else self.start.advanced(rows, self.by_row)


@dataclass(frozen=True)
class Batch:
    """One batch of columns, and the position of the row that follows it."""

    columns: dict[str, Column]
    num_rows: int
    cursor: Cursor


@dataclass(frozen=True)
class EpochEnd:
    """End of the epoch's batches; ``cursor`` is the start of the next epoch."""

    cursor: Cursor


def pack(
    chunks: Iterable[Chunk],
    batch_size: int,
    drop_remainder: bool,
    next_epoch: Cursor,
    allocate: Allocate | None = None,
) -> Iterator[Batch | EpochEnd]:
    """Batches of exactly ``batch_size`` rows, then the tail (unless dropped), then EpochEnd.

    ``allocate(shape, dtype)`` makes the batches' arrays (e.g. in pinned memory), see
    :func:`~recis.io.row_ops.gather_ranges`.
    """
    pieces, filled, last = [], 0, None
    for chunk in chunks:
        last, taken = chunk, 0
        while taken < chunk.num_rows:
            count = min(batch_size - filled, chunk.num_rows - taken)
            pieces.append((chunk, taken, taken + count))
            taken += count
            filled += count
            if filled == batch_size:
                yield _batch(pieces, filled, chunk.cursor_after(taken), allocate)
                pieces, filled = [], 0
    if filled and not drop_remainder:
        yield _batch(pieces, filled, last.end, allocate)
    yield EpochEnd(next_epoch)


def _batch(
    pieces: list[tuple[Chunk, int, int]], num_rows: int, cursor: Cursor, allocate: Allocate | None
) -> Batch:
    names = pieces[0][0].columns
    columns = {
        name: gather_ranges(
            [(chunk.columns[name], start, stop) for chunk, start, stop in pieces], allocate
        )
        for name in names
    }
    return Batch(columns, num_rows, cursor)

"""Seeded shuffling that can be replayed from a small position.

Two levels, both pure functions of ``(seed, epoch, worker)``:

- the order of a worker's fragments is permuted anew every epoch;
- rows are then permuted within consecutive windows of ``window_rows`` rows of that stream (a
  bounded shuffle buffer: memory holds one window). Window ``w``'s permutation depends only on
  ``w``, so a reader restarted at a window's first row, dropping the rows already delivered,
  continues the stream exactly; no buffer contents need saving.

>>> order = epoch_order(6, seed=7, epoch=0, shard=(0, 1))
>>> sorted(order.tolist()), order.tolist() == epoch_order(6, 7, 1, (0, 1)).tolist()
([0, 1, 2, 3, 4, 5], False)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from recis.io.cursor import Cursor
from recis.io.packer import Chunk
from recis.io.row_ops import gather_ranges, take_rows

_ORDER_STREAM, _WINDOW_STREAM = 0, 1


def epoch_order(count: int, seed: int, epoch: int, shard: tuple[int, int]) -> np.ndarray:
    """A permutation of ``range(count)``: the worker's fragment order in ``epoch``."""
    rng = np.random.default_rng([seed, _ORDER_STREAM, epoch, *shard])
    return rng.permutation(count)


def window_shuffle(
    chunks: Iterable[Chunk], window_rows: int, start: Cursor, seed: int, shard: tuple[int, int]
) -> Iterator[Chunk]:
    """Permute the rows of a plain chunk stream that begins at ``start`` within windows.

    ``start.window`` is the index of the first window and ``start.skip`` the rows of its
    permutation to drop (already delivered before a restart). The output chunks advance their
    cursor by ``skip``; a window's end cursor is the start of the next window.
    """
    pieces, filled = [], 0
    window, skip, window_start = start.window, start.skip, start
    for chunk in chunks:
        taken = 0
        while taken < chunk.num_rows:
            count = min(window_rows - filled, chunk.num_rows - taken)
            pieces.append((chunk, taken, taken + count))
            taken += count
            filled += count
            if filled == window_rows:
                after = chunk.cursor_after(taken)
                yield _window(pieces, filled, window_start, after, skip, seed, shard)
                pieces, filled, skip = [], 0, 0
                window_start = Cursor(after.epoch, after.fragment, after.row, window + 1)
                window += 1
    if filled:
        yield _window(pieces, filled, window_start, pieces[-1][0].end, skip, seed, shard)


def _window(pieces, rows: int, start: Cursor, after: Cursor, skip: int, seed, shard) -> Chunk:
    rng = np.random.default_rng([seed, _WINDOW_STREAM, start.epoch, *shard, start.window])
    order = rng.permutation(rows)[skip:]
    names = pieces[0][0].columns
    columns = {
        name: take_rows(gather_ranges([(c.columns[name], a, b) for c, a, b in pieces]), order)
        for name in names
    }
    start = Cursor(start.epoch, start.fragment, start.row, start.window, skip)
    end = Cursor(after.epoch, after.fragment, after.row, start.window + 1)
    return Chunk(columns, len(order), start, end, by_row=False)

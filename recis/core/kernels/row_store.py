"""Block-storage kernels for :class:`recis.core.row_store.RowStore`.

A field's storage is a typed list of equally sized 2-D blocks ``[block_rows, width]``. Row ``r``
lives in block ``r >> log2_block_rows`` at offset ``r & (block_rows - 1)``. A batch of rows is
first bucketed by block (:func:`bucket_by_block`, a counting sort), so that the copy kernels touch
each block once instead of once per row.

Each kernel has a NumPy reference twin ``<name>_reference`` with the same signature; the twins take
a plain Python list of blocks.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def bucket_by_block(rows, log2_block_rows, num_blocks, order, bounds):
    """Fill ``order`` with positions of ``rows`` grouped by block (stable) and ``bounds[b]:
    bounds[b + 1]`` with block ``b``'s range in ``order``."""
    bounds[:] = 0
    for i in range(rows.shape[0]):
        bounds[(rows[i] >> log2_block_rows) + 1] += 1
    for b in range(num_blocks):
        bounds[b + 1] += bounds[b]
    cursor = bounds[:-1].copy()
    for i in range(rows.shape[0]):
        b = rows[i] >> log2_block_rows
        order[cursor[b]] = i
        cursor[b] += 1


def bucket_by_block_reference(rows, log2_block_rows, num_blocks, order, bounds):
    """Twin of :func:`bucket_by_block`."""
    blocks = rows >> log2_block_rows
    order[:] = np.argsort(blocks, kind="stable")
    bounds[:] = np.searchsorted(blocks[order], np.arange(num_blocks + 1), side="left")


@numba.njit(parallel=True, cache=True)
def gather(blocks, rows, order, bounds, out):
    """``out[i] = row rows[i]`` for every position, one block at a time."""
    mask = blocks[0].shape[0] - 1
    for b in numba.prange(len(blocks)):
        block = blocks[np.int64(b)]
        for k in range(bounds[b], bounds[b + 1]):
            i = order[k]
            offset = rows[i] & mask
            for j in range(out.shape[1]):
                out[i, j] = block[offset, j]


def gather_reference(blocks, rows, order, bounds, out):
    """Twin of :func:`gather`."""
    out[:] = np.concatenate(list(blocks))[rows]


@numba.njit(parallel=True, cache=True)
def scatter(blocks, rows, order, bounds, values):
    """Row ``rows[i]`` = ``values[i]``; for repeated rows the last position wins."""
    mask = blocks[0].shape[0] - 1
    for b in numba.prange(len(blocks)):
        block = blocks[np.int64(b)]
        for k in range(bounds[b], bounds[b + 1]):
            i = order[k]
            offset = rows[i] & mask
            for j in range(values.shape[1]):
                block[offset, j] = values[i, j]


def scatter_reference(blocks, rows, order, bounds, values):
    """Twin of :func:`scatter`."""
    block_rows = blocks[0].shape[0]
    for i, row in enumerate(rows.tolist()):
        blocks[row // block_rows][row % block_rows] = values[i]

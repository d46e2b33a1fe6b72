"""The blocks and kernels of a GPU table's storage tiers (``cuda/tiers.cu``).

A tiered GPU table keeps each field in one :class:`~recis.core.row_store.RowStore` whose first
``hot_blocks`` blocks are device memory (the hot slots) and whose later blocks are pinned host
memory mapped into the device's address space (:class:`TierBlocks` makes them): kernels read
and write a cold row where it is, through its host address, as they do a hot one. Rows are
addressed by *location*: a hot row by its slot, a cold row ``r`` by ``hot_span + r``
(:func:`locate_rows`); :func:`move_rows` copies rows between locations. Both have NumPy twins.

Importing this module does not import CuPy:

>>> import numpy as np
>>> slot_of = np.array([-1, 0, -1], np.int32)  # row 1 is in hot slot 0
>>> locate_rows_reference(np.array([0, 1, 2, -1]), slot_of, hot_span=4).tolist()
[4, 0, 6, -1]
"""

from __future__ import annotations

import numpy as np

from recis.core.cuda import loader
from recis.core.cuda.row_store import DeviceBlocks, DeviceRows, _copy_unit, block_arguments
from recis.core.errors import TableFullError

SOURCE = "tiers.cu"
MAPPED = 2  # cudaHostAllocMapped


class PinnedBlock:
    """A block of rows in pinned host memory mapped into the device's address space: ``host``
    is its NumPy view, ``data.ptr`` its address (the same on the device: unified addressing)."""

    def __init__(self, shape: tuple[int, int], dtype) -> None:
        cupy = loader.require_cupy("pinned host memory")
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        flags = getattr(cupy.cuda.runtime, "hostAllocMapped", MAPPED)
        self._memory = cupy.cuda.PinnedMemory(max(nbytes, 1), flags)
        buffer = cupy.cuda.PinnedMemoryPointer(self._memory, 0)
        self.host = np.frombuffer(buffer, np.dtype(dtype), int(np.prod(shape))).reshape(shape)
        self.data = self._memory  # ``.ptr``, as a CuPy array's ``data``
        self.shape = shape
        self.nbytes = nbytes


class TierBlocks(DeviceRows):
    """Block operations of a tiered field: the first ``hot_blocks`` blocks of each field on the
    device, later ones :class:`PinnedBlock` s, at most ``max_pinned_bytes`` of them (None: no
    limit) for table ``table``."""

    def __init__(self, table: str, hot_blocks: int, max_pinned_bytes: int | None = None):
        self.table = table
        self.hot_blocks = hot_blocks
        self.max_pinned_bytes = max_pinned_bytes
        self.pinned_bytes = 0

    def append(self, blocks: DeviceBlocks, field, block_rows: int, fill: bool = True) -> None:
        """Add a device block while the field has fewer than ``hot_blocks``, else a pinned one."""
        if len(blocks) < self.hot_blocks:
            return DeviceRows.append(blocks, field, block_rows, fill)
        nbytes = block_rows * field.width * field.dtype.itemsize
        if self.max_pinned_bytes is not None and self.pinned_bytes + nbytes > self.max_pinned_bytes:
            raise TableFullError(
                f"table {self.table!r}: its pinned host tier is full ({self.pinned_bytes} bytes "
                f"of host_bytes={self.max_pinned_bytes}, a block needs {nbytes} more); raise "
                "host_bytes"
            )
        block = PinnedBlock((block_rows, field.width), field.storage_dtype)
        block.host[...] = field.fill_bits if fill else 0
        blocks.append(block)
        self.pinned_bytes += nbytes


def locate_rows(rows, slot_of, hot_span: int):
    """Locations of table ``rows`` (CuPy int64; -1 stays -1): ``slot_of[row]`` (CuPy int32,
    -1: cold) where the row is hot, else ``hot_span + row``. Waits for nothing."""
    cupy = loader.require_cupy("locating rows of a tiered GPU table")
    rows = cupy.ascontiguousarray(cupy.asarray(rows), np.int64).reshape(-1)
    out = cupy.empty(rows.size, np.int64)
    args = (rows, np.int64(rows.size), slot_of, np.int64(slot_of.size), np.int64(hot_span), out)
    _run("locate_rows", rows.size, args)
    return out


def locate_rows_reference(rows, slot_of, hot_span: int) -> np.ndarray:
    """NumPy twin of :func:`locate_rows`."""
    rows = np.asarray(rows, np.int64).reshape(-1)
    known = (rows >= 0) & (rows < slot_of.size)
    slots = np.full(rows.size, -1, np.int64)
    slots[known] = slot_of[rows[known]]
    located = np.where(slots >= 0, slots, hot_span + rows)
    return np.where(rows >= 0, located, -1)


def move_rows(blocks: DeviceBlocks, spec, source, target) -> None:
    """Copy the rows of one field at locations ``source`` to locations ``target`` (CuPy int64,
    not overlapping), bit for bit; pairs outside the blocks are skipped."""
    count = source.size
    if count == 0:
        return
    row_bytes = spec.width * spec.dtype.itemsize
    size, suffix = _copy_unit(row_bytes, 0)
    units = row_bytes // size
    args = (*block_arguments(blocks), source, target, np.int64(units), np.int64(count * units))
    _run(f"move_rows_{suffix}", count * units, args)


def move_rows_reference(blocks: list[np.ndarray], source, target) -> None:
    """NumPy twin of :func:`move_rows` on host blocks ``[block_rows, width]`` of one field."""
    block_rows = blocks[0].shape[0] if blocks else 1
    capacity = len(blocks) * block_rows
    for old, new in zip(np.asarray(source).tolist(), np.asarray(target).tolist(), strict=True):
        if 0 <= old < capacity and 0 <= new < capacity:
            row = blocks[old // block_rows][old % block_rows].copy()
            blocks[new // block_rows][new % block_rows] = row


def _run(name: str, total: int, args: tuple) -> None:
    if total:
        loader.launch(loader.kernel(SOURCE, name), total, args)

"""The GPU half of :class:`recis.core.row_store.RowStore`: blocks as CuPy arrays, CUDA copies.

A field is a :class:`DeviceBlocks`: CuPy blocks ``[block_rows, width]`` of unsigned words that
never move, and a device array of their addresses that the kernels of ``cuda/row_store.cu`` read.
Copies are bitwise, in the widest unit (up to 16 bytes) that divides a row and the dense array's
alignment. float16 and bfloat16 fields also convert to and from float32 inside the copy (round to
nearest even), since CuPy has no bfloat16 dtype.

Nothing here waits for the device: rows are not checked against the capacity (a gather reads
zeros for rows outside ``[0, capacity)``, a scatter skips them), and repeated rows in a scatter
are resolved on the device (the last position wins, as on the CPU).

Importing this module does not import CuPy:

>>> DeviceRows.Plan.__name__
'DevicePlan'
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

from recis.core.cuda import loader

SOURCE = "row_store.cu"
NULL = np.uint64(0)  # a null pointer argument
COPY_UNITS = ((16, "u128"), (8, "u64"), (4, "u32"), (2, "u16"), (1, "u8"))
CONVERTED = {np.dtype(np.float16): "float16", np.dtype(ml_dtypes.bfloat16): "bfloat16"}
FLOAT32 = np.dtype(np.float32)


class DeviceBlocks:
    """One field's blocks on the GPU, indexable like a list, with :attr:`addresses`."""

    def __init__(self) -> None:
        self._blocks: list = []
        self._addresses = None

    def __len__(self) -> int:
        return len(self._blocks)

    def __getitem__(self, index: int):
        return self._blocks[index]

    def append(self, block) -> None:
        self._blocks.append(block)
        self._addresses = None

    @property
    def addresses(self):
        """uint64 device array of the blocks' addresses (remade after the blocks change)."""
        if self._addresses is None:
            cupy = loader.require_cupy("a row store on the GPU")
            pointers = np.array([block.data.ptr for block in self._blocks], np.uint64)
            self._addresses = cupy.asarray(pointers)
        return self._addresses


class DevicePlan:
    """Rows (CuPy int64) of a batch of gathers/scatters; the mask of each row's last position is
    made on the first scatter that needs it (never for rows known to be ``distinct``)."""

    def __init__(self, rows, distinct: bool = False) -> None:
        self.rows = rows
        self.distinct = distinct
        self._is_last = None

    def is_last(self):
        """uint8 mask of the positions that are their row's last one; NULL (every position)
        for distinct rows."""
        if self.distinct or self.rows.size < 2:
            return NULL
        if self._is_last is None:
            self._is_last = last_positions(self.rows)
        return self._is_last


class DeviceRows:
    """The operations :class:`~recis.core.row_store.RowStore` runs on a ``"cuda"`` store."""

    Plan = DevicePlan

    @staticmethod
    def new_blocks(field, block_rows: int) -> DeviceBlocks:
        loader.require_cupy("a row store on the GPU")
        return DeviceBlocks()

    @staticmethod
    def append(blocks: DeviceBlocks, field, block_rows: int, fill: bool = True) -> None:
        cupy = loader.require_cupy("a row store on the GPU")
        block = cupy.empty((block_rows, field.width), field.storage_dtype)
        if fill:
            block.fill(field.fill_bits)
        blocks.append(block)

    @staticmethod
    def plan(store, rows, distinct: bool = False) -> DevicePlan:
        cupy = loader.require_cupy("a row store on the GPU")
        return DevicePlan(cupy.ascontiguousarray(cupy.asarray(rows), np.int64), distinct)

    @staticmethod
    def as_array(values):
        return loader.require_cupy("a row store on the GPU").asarray(values)

    @staticmethod
    def gather(blocks: DeviceBlocks, plan: DevicePlan, spec, dtype=None):
        """Rows of one field as ``dtype`` (default: the field's; see ``RowStore.gather``)."""
        cupy = loader.require_cupy("a row store on the GPU")
        count = plan.rows.size
        wanted = spec.dtype if dtype is None else np.dtype(dtype)
        if wanted == FLOAT32 and spec.dtype in CONVERTED:
            out = cupy.empty((count, spec.width), FLOAT32)
            kernel = f"gather_{CONVERTED[spec.dtype]}_as_float32"
            _launch(kernel, count * spec.width, _rows(blocks, plan), spec.width, out)
            return out.reshape(count, *spec.shape)
        if wanted not in (spec.dtype, spec.storage_dtype) and spec.dtype in CONVERTED:
            return DeviceRows.gather(blocks, plan, spec, FLOAT32).astype(wanted)
        if wanted == np.dtype(ml_dtypes.bfloat16):
            raise TypeError("CuPy has no bfloat16: gather as float32 or as raw uint16 words")
        words = _gather_words(blocks, plan, spec)
        if wanted == spec.storage_dtype:
            return words
        return words.view(spec.dtype).astype(wanted, copy=False)

    @staticmethod
    def scatter(blocks: DeviceBlocks, plan: DevicePlan, values, spec) -> None:
        """Write ``values`` to rows: values of the field's storage word (``uint32`` for float32,
        ``uint16`` for bfloat16, ...) as raw bits, others rounded (float16/bfloat16 fields, from
        float32) or cast to the field's dtype."""
        cupy = loader.require_cupy("a row store on the GPU")
        count = plan.rows.size
        if count == 0:
            return
        rows = (*_rows(blocks, plan), plan.is_last())
        if values.dtype == spec.storage_dtype:  # bits travel as they are
            words = cupy.ascontiguousarray(values).reshape(count, spec.width)
        elif spec.dtype in CONVERTED and values.dtype != spec.dtype:
            floats = cupy.ascontiguousarray(values, FLOAT32).reshape(count, spec.width)
            kernel = f"scatter_float32_as_{CONVERTED[spec.dtype]}"
            _launch(kernel, count * spec.width, rows, spec.width, floats)
            return
        else:
            values = cupy.ascontiguousarray(values, spec.dtype).reshape(count, spec.width)
            words = values.view(spec.storage_dtype)
        size, suffix = _copy_unit(spec.width * spec.dtype.itemsize, words.data.ptr)
        units = spec.width * spec.dtype.itemsize // size
        _launch(f"scatter_rows_{suffix}", count * units, rows, units, words)

    @staticmethod
    def fill(blocks: DeviceBlocks, plan: DevicePlan, spec) -> None:
        """Set rows of one field to its fill value."""
        suffix = f"u{8 * spec.dtype.itemsize}"
        bits = np.uint64(int(spec.fill_bits))
        total = plan.rows.size * spec.width
        args = (*_rows(blocks, plan), np.int64(spec.width), bits, np.int64(total))
        _run(f"fill_rows_{suffix}", total, args)


def last_positions(rows):
    """uint8 mask over ``rows`` (CuPy int64): 1 where a position is the last one of its row
    (rows < 0 get 0). Two passes over a scratch hash table of at least twice as many slots."""
    cupy = loader.require_cupy("a row store on the GPU")
    count = rows.size
    slots = 1 << max(4, (2 * count - 1).bit_length())
    slot_rows = cupy.full(slots, -1, np.int64)
    slot_last = cupy.full(slots, -1, np.int64)
    mask = np.int64(slots - 1)
    _run("claim_last_positions", count, (rows, np.int64(count), slot_rows, slot_last, mask))
    is_last = cupy.empty(count, np.uint8)
    args = (rows, np.int64(count), slot_rows, slot_last, mask, is_last)
    _run("mark_last_positions", count, args)
    return is_last


def _gather_words(blocks: DeviceBlocks, plan: DevicePlan, spec):
    """The rows' bits as ``[n, *shape]`` of the field's storage dtype."""
    cupy = loader.require_cupy("a row store on the GPU")
    count, row_bytes = plan.rows.size, spec.width * spec.dtype.itemsize
    out = cupy.empty((count, spec.width), spec.storage_dtype)
    size, suffix = _copy_unit(row_bytes, out.data.ptr)
    units = row_bytes // size
    _launch(f"gather_rows_{suffix}", count * units, _rows(blocks, plan), units, out)
    return out.reshape(count, *spec.shape)


def _copy_unit(row_bytes: int, address: int) -> tuple[int, str]:
    """The widest copy unit dividing both a row's bytes and the dense array's address.

    >>> _copy_unit(64, 256), _copy_unit(12, 256), _copy_unit(64, 258)
    ((16, 'u128'), (4, 'u32'), (2, 'u16'))
    """
    return next(u for u in COPY_UNITS if row_bytes % u[0] == 0 and address % u[0] == 0)


def block_arguments(blocks: DeviceBlocks) -> tuple:
    """Kernel arguments naming a field: block addresses, log2(block rows), capacity."""
    if not len(blocks):
        return (NULL, np.int64(0), np.int64(0))
    block_rows = blocks[0].shape[0]
    capacity = len(blocks) * block_rows
    return (blocks.addresses, np.int64(block_rows.bit_length() - 1), np.int64(capacity))


def _rows(blocks: DeviceBlocks, plan: DevicePlan) -> tuple:
    """Kernel arguments naming a field and the rows of a plan."""
    return (*block_arguments(blocks), plan.rows)


def _launch(name: str, total: int, leading: tuple, width: int, array) -> None:
    """Launch a copy kernel: ``leading`` arguments, the row width (in units), ``array``, total."""
    _run(name, total, (*leading, np.int64(width), array, np.int64(total)))


def _run(name: str, total: int, args: tuple) -> None:
    """Launch kernel ``name`` of ``cuda/row_store.cu`` over ``total`` items."""
    if total:
        loader.launch(loader.kernel(SOURCE, name), total, args)

"""``RowStore``: embedding rows and per-row slots in blocks that never move.

Each *field* — the ``"embedding"`` rows of ``dim`` values, and any named slot such as optimizer
state or a last-seen step — is a list of fixed-size blocks of ``block_rows`` rows. Growing adds
blocks; existing rows stay where they are. Row numbers come from the table's
:class:`~recis.core.id_map.IdMap`, which reuses the rows of erased ids.

With ``device="cuda"`` the blocks are CuPy arrays and the copies run as CUDA kernels
(:mod:`recis.core.cuda.row_store`); rows and values may then be CuPy or NumPy arrays, results are
CuPy arrays.

>>> import numpy as np
>>> store = RowStore(dim=2, block_rows=4)
>>> store.add_slot("step", dtype=np.int64, fill=-1)
>>> store.ensure_rows(6)  # two blocks
>>> store.scatter(np.array([5, 0]), np.array([[1, 2], [3, 4]], np.float32))
>>> store.gather(np.array([0, 5])).tolist()
[[3.0, 4.0], [1.0, 2.0]]
>>> store.gather(np.array([5]), "step").tolist()
[-1]
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from numba.typed import List

from recis.core import arrays as interop
from recis.core.kernels import row_store as kernels

EMBEDDING = "embedding"
DEVICES = ("cpu", "cuda")


@dataclass(frozen=True)
class Field:
    """One stored quantity per row: ``shape`` values of ``dtype``; new blocks hold ``fill``."""

    shape: tuple[int, ...]
    dtype: np.dtype
    fill: float

    @property
    def width(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def storage_dtype(self) -> np.dtype:
        """The dtype the copy kernels see: an unsigned int of the same size (copies are bitwise)."""
        return np.dtype(f"u{self.dtype.itemsize}")

    @property
    def fill_bits(self):
        """``fill`` in the field's dtype, as its storage word."""
        return np.array(self.fill, self.dtype).view(self.storage_dtype)[()]


@dataclass(frozen=True)
class RowPlan:
    """Rows bucketed by block, reusable across the fields of one store."""

    rows: np.ndarray
    order: np.ndarray
    bounds: np.ndarray


class RowStore:
    """Rows of ``dim`` values of ``dtype`` plus named slots, in blocks of ``block_rows`` rows.

    Args:
        dim: values per embedding row.
        dtype: storage dtype of the embedding rows (e.g. float32, float16, ``ml_dtypes.bfloat16``).
        block_rows: rows per block, a power of two; memory grows by one block at a time.
        name: names the table in errors.
        device: ``"cpu"`` (NumPy blocks) or ``"cuda"`` (CuPy blocks on the current device).
        ops: the block operations (default: the device's), e.g.
            :class:`~recis.core.tiers.disk.DiskRows` for blocks in mapped files.
    """

    def __init__(
        self,
        dim: int,
        dtype=np.float32,
        block_rows: int = 16384,
        name: str = "table",
        device: str = "cpu",
        ops=None,
    ):
        if dim < 1:
            raise ValueError(f"RowStore {name!r}: dim must be >= 1, got {dim}")
        if block_rows < 1 or block_rows & (block_rows - 1):
            raise ValueError(f"RowStore {name!r}: block_rows must be a power of two")
        if device not in DEVICES:
            raise ValueError(f"RowStore {name!r}: device must be one of {DEVICES}, got {device!r}")
        self.name = name
        self.dim = dim
        self.block_rows = block_rows
        self.device = device
        self._log2_block_rows = block_rows.bit_length() - 1
        if ops is None:  # the device's block operations
            ops = HostRows if device == "cpu" else _device_rows()
        self._ops = ops
        self._fields: dict[str, Field] = {}
        self._blocks: dict[str, List] = {}
        self._add_field(EMBEDDING, Field((dim,), np.dtype(dtype), 0.0))

    @property
    def fields(self) -> dict[str, Field]:
        """Every field by name, the embedding first."""
        return dict(self._fields)

    @property
    def num_blocks(self) -> int:
        return len(self._blocks[EMBEDDING])

    @property
    def capacity(self) -> int:
        """Rows that fit without growing."""
        return self.num_blocks * self.block_rows

    @property
    def nbytes(self) -> int:
        """Bytes held by all blocks of all fields."""
        return self.capacity * self._row_bytes()

    @property
    def block_bytes(self) -> int:
        """Bytes one more block of all fields takes."""
        return self.block_rows * self._row_bytes()

    def _row_bytes(self) -> int:
        return sum(f.width * f.dtype.itemsize for f in self._fields.values())

    def add_slot(self, name: str, shape: tuple[int, ...] = (), dtype=np.float32, fill=0.0):
        """Add a per-row slot of ``shape`` values; existing rows get ``fill``."""
        if name in self._fields:
            raise ValueError(f"RowStore {self.name!r}: slot {name!r} already exists")
        self._add_field(name, Field(tuple(shape), np.dtype(dtype), fill))

    def set_fill(self, name: str, fill: float) -> None:
        """Give the rows ``name`` starts from here on (new blocks, reset rows) ``fill``; rows
        already there keep their values."""
        if name == EMBEDDING or name not in self._fields:
            raise ValueError(f"RowStore {self.name!r}: no slot {name!r} to set the fill of")
        self._fields[name] = replace(self._fields[name], fill=fill)

    def _add_field(self, name: str, field: Field) -> None:
        self._fields[name] = field
        self._blocks[name] = self._ops.new_blocks(field, self.block_rows)
        for _ in range(self.num_blocks if name != EMBEDDING else 0):
            self._ops.append(self._blocks[name], field, self.block_rows)

    def ensure_rows(self, num_rows: int, fill: bool = True) -> None:
        """Add blocks until rows ``[0, num_rows)`` exist; ``fill=False`` leaves new blocks
        unset, for a caller that writes every field of every row it hands out."""
        while self.capacity < num_rows:
            for name, field in self._fields.items():
                self._ops.append(self._blocks[name], field, self.block_rows, fill)

    def plan(self, rows, distinct: bool = False):
        """Prepare ``rows`` once for several gathers/scatters (on the CPU: bucketed by block).

        On the GPU, rows are not checked against the capacity (that would wait for the device):
        a gather reads zeros for rows outside ``[0, capacity)`` and a scatter skips them.
        ``distinct=True`` promises that no row repeats, which spares a GPU scatter the search
        for each row's last position.
        """
        return self._ops.plan(self, rows, distinct)

    def gather(self, rows, field: str = EMBEDDING, dtype=None):
        """Copy of the given rows of ``field``: ``[n, *shape]`` of the field's dtype.

        ``dtype`` converts the copy: to float32 (on the GPU, float16 and bfloat16 fields convert
        in the copy kernel), or to the field's storage word (its raw bits, e.g. ``uint16`` for
        bfloat16, which CuPy has no dtype for).
        """
        plan, spec = self._plan(rows), self._field(field)
        return self._ops.gather(self._blocks[field], plan, spec, dtype)

    def scatter(self, rows, values, field: str = EMBEDDING) -> None:
        """Write ``values[i]`` (cast to the field's dtype) to row ``rows[i]`` of ``field``.

        For repeated rows the last position wins. Values of the field's storage word (e.g.
        ``uint16`` for bfloat16) are written as raw bits, what :meth:`gather` gives for that
        ``dtype``.
        """
        plan, spec = self._plan(rows), self._field(field)
        if isinstance(values, np.ndarray) and values.dtype == spec.dtype:
            values = np.ascontiguousarray(values).view(spec.storage_dtype)  # bits travel as is
        values = self._ops.as_array(values)
        if values.shape[1:] != spec.shape and values.shape != (plan.rows.size, *spec.shape):
            raise ValueError(
                f"RowStore {self.name!r}: {field} values must be "
                f"[{plan.rows.size}, {', '.join(map(str, spec.shape))}], got {list(values.shape)}"
            )
        self._ops.scatter(self._blocks[field], plan, values, spec)

    def reset(self, rows, fields=None) -> None:
        """Set ``rows`` of the given slots (default: all but the embedding) to their fill."""
        plan = self._plan(rows)
        for name in fields if fields is not None else list(self._fields)[1:]:
            self._ops.fill(self._blocks[name], plan, self._field(name))

    def blocks(self, field: str = EMBEDDING):
        """The blocks of ``field``, for kernels: a numba typed list of NumPy arrays on the CPU,
        a :class:`~recis.core.cuda.row_store.DeviceBlocks` on the GPU."""
        self._field(field)
        return self._blocks[field]

    def clear(self) -> None:
        """Drop every block (fields are kept)."""
        for name, field in self._fields.items():
            self._blocks[name] = self._ops.new_blocks(field, self.block_rows)

    def _plan(self, rows):
        return rows if isinstance(rows, self._ops.Plan) else self.plan(rows)

    def _field(self, name: str) -> Field:
        if name not in self._fields:
            raise KeyError(f"RowStore {self.name!r} has no field {name!r} ({list(self._fields)})")
        return self._fields[name]


class HostRows:
    """The CPU half of :class:`RowStore`: a field is a numba typed list of NumPy blocks viewed as
    unsigned words; copies run block by block over a :class:`RowPlan`."""

    Plan = RowPlan

    @staticmethod
    def new_blocks(field: Field, block_rows: int) -> List:
        return List.empty_list(_block_type(field))

    @staticmethod
    def append(blocks: List, field: Field, block_rows: int, fill: bool = True) -> None:
        block = interop.empty((block_rows, field.width), field.dtype)
        if fill:
            block[...] = field.fill
        blocks.append(block.view(field.storage_dtype))

    @staticmethod
    def plan(store: RowStore, rows, distinct: bool = False) -> RowPlan:
        rows = np.ascontiguousarray(rows, np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= store.capacity):
            raise IndexError(
                f"RowStore {store.name!r}: rows must lie in [0, {store.capacity}), "
                f"got [{rows.min()}, {rows.max()}]"
            )
        order = np.empty(rows.size, np.int64)
        bounds = np.empty(store.num_blocks + 1, np.int64)
        kernels.bucket_by_block(rows, store._log2_block_rows, store.num_blocks, order, bounds)
        return RowPlan(rows, order, bounds)

    @staticmethod
    def as_array(values) -> np.ndarray:
        return np.asarray(values)

    @staticmethod
    def gather(blocks: List, plan: RowPlan, spec: Field, dtype=None) -> np.ndarray:
        out = interop.empty((plan.rows.size, spec.width), spec.storage_dtype)
        if plan.rows.size:
            kernels.gather(blocks, plan.rows, plan.order, plan.bounds, out)
        if dtype is not None and np.dtype(dtype) == spec.storage_dtype:
            return out.reshape(plan.rows.size, *spec.shape)
        out = out.view(spec.dtype).reshape(plan.rows.size, *spec.shape)
        return out if dtype is None else out.astype(dtype, copy=False)

    @staticmethod
    def scatter(blocks: List, plan: RowPlan, values: np.ndarray, spec: Field) -> None:
        """Values of the field's storage word are raw bits, as on the GPU; others are cast."""
        dtype = spec.storage_dtype if values.dtype == spec.storage_dtype else spec.dtype
        values = np.ascontiguousarray(values, dtype).reshape(plan.rows.size, spec.width)
        if plan.rows.size:
            flat = values.view(spec.storage_dtype)
            kernels.scatter(blocks, plan.rows, plan.order, plan.bounds, flat)

    @staticmethod
    def fill(blocks: List, plan: RowPlan, spec: Field) -> None:
        values = np.full((plan.rows.size, *spec.shape), spec.fill, spec.dtype)
        HostRows.scatter(blocks, plan, values, spec)


def _device_rows():
    from recis.core.cuda.row_store import DeviceRows

    return DeviceRows


def _block_type(field: Field):
    from numba import typeof

    return typeof(np.empty((1, 1), field.storage_dtype))

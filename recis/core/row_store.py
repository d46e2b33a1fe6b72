"""``RowStore``: embedding rows and per-row slots in blocks that never move.

Each *field* — the ``"embedding"`` rows of ``dim`` values, and any named slot such as optimizer
state or a last-seen step — is a list of fixed-size blocks of ``block_rows`` rows. Growing adds
blocks; existing rows stay where they are. Row numbers come from the table's
:class:`~recis.core.id_map.IdMap`, which reuses the rows of erased ids.

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

from dataclasses import dataclass

import numpy as np
from numba.typed import List

from recis.core import interop
from recis.core.kernels import row_store as kernels

EMBEDDING = "embedding"


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
    """

    def __init__(self, dim: int, dtype=np.float32, block_rows: int = 16384, name: str = "table"):
        if dim < 1:
            raise ValueError(f"RowStore {name!r}: dim must be >= 1, got {dim}")
        if block_rows < 1 or block_rows & (block_rows - 1):
            raise ValueError(f"RowStore {name!r}: block_rows must be a power of two")
        self.name = name
        self.dim = dim
        self.block_rows = block_rows
        self._log2_block_rows = block_rows.bit_length() - 1
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
        per_row = sum(f.width * f.dtype.itemsize for f in self._fields.values())
        return self.capacity * per_row

    def add_slot(self, name: str, shape: tuple[int, ...] = (), dtype=np.float32, fill=0.0):
        """Add a per-row slot of ``shape`` values; existing rows get ``fill``."""
        if name in self._fields:
            raise ValueError(f"RowStore {self.name!r}: slot {name!r} already exists")
        self._add_field(name, Field(tuple(shape), np.dtype(dtype), fill))

    def _add_field(self, name: str, field: Field) -> None:
        self._fields[name] = field
        self._blocks[name] = List.empty_list(_block_type(field))
        for _ in range(self.num_blocks if name != EMBEDDING else 0):
            self._blocks[name].append(self._new_block(field))

    def _new_block(self, field: Field) -> np.ndarray:
        block = interop.empty((self.block_rows, field.width), field.dtype)
        block[...] = field.fill
        return block.view(field.storage_dtype)

    def ensure_rows(self, num_rows: int) -> None:
        """Add blocks until rows ``[0, num_rows)`` exist."""
        while self.capacity < num_rows:
            for name, field in self._fields.items():
                self._blocks[name].append(self._new_block(field))

    def plan(self, rows: np.ndarray) -> RowPlan:
        """Bucket ``rows`` by block, once for several gathers/scatters."""
        rows = np.ascontiguousarray(rows, np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= self.capacity):
            raise IndexError(
                f"RowStore {self.name!r}: rows must lie in [0, {self.capacity}), "
                f"got [{rows.min()}, {rows.max()}]"
            )
        order = np.empty(rows.size, np.int64)
        bounds = np.empty(self.num_blocks + 1, np.int64)
        kernels.bucket_by_block(rows, self._log2_block_rows, self.num_blocks, order, bounds)
        return RowPlan(rows, order, bounds)

    def gather(self, rows: np.ndarray | RowPlan, field: str = EMBEDDING) -> np.ndarray:
        """Copy of the given rows of ``field``: ``[n, *shape]`` of the field's dtype."""
        plan, spec = self._plan(rows), self._field(field)
        out = interop.empty((plan.rows.size, spec.width), spec.storage_dtype)
        if plan.rows.size:
            kernels.gather(self._blocks[field], plan.rows, plan.order, plan.bounds, out)
        return out.view(spec.dtype).reshape(plan.rows.size, *spec.shape)

    def scatter(self, rows: np.ndarray | RowPlan, values, field: str = EMBEDDING) -> None:
        """Write ``values[i]`` (cast to the field's dtype) to row ``rows[i]`` of ``field``."""
        plan, spec = self._plan(rows), self._field(field)
        values = np.asarray(values)
        if values.shape[1:] != spec.shape and values.shape != (plan.rows.size, *spec.shape):
            raise ValueError(
                f"RowStore {self.name!r}: {field} values must be "
                f"[{plan.rows.size}, {', '.join(map(str, spec.shape))}], got {list(values.shape)}"
            )
        values = np.ascontiguousarray(values, spec.dtype).reshape(plan.rows.size, spec.width)
        if plan.rows.size:
            flat = values.view(spec.storage_dtype)
            kernels.scatter(self._blocks[field], plan.rows, plan.order, plan.bounds, flat)

    def reset(self, rows: np.ndarray | RowPlan, fields=None) -> None:
        """Set ``rows`` of the given slots (default: all but the embedding) to their fill."""
        plan = self._plan(rows)
        for name in fields if fields is not None else list(self._fields)[1:]:
            spec = self._field(name)
            self.scatter(plan, np.full((plan.rows.size, *spec.shape), spec.fill, spec.dtype), name)

    def clear(self) -> None:
        """Drop every block (fields are kept)."""
        for name, field in self._fields.items():
            self._blocks[name] = List.empty_list(_block_type(field))

    def _plan(self, rows) -> RowPlan:
        return rows if isinstance(rows, RowPlan) else self.plan(rows)

    def _field(self, name: str) -> Field:
        if name not in self._fields:
            raise KeyError(f"RowStore {self.name!r} has no field {name!r} ({list(self._fields)})")
        return self._fields[name]


def _block_type(field: Field):
    from numba import typeof

    return typeof(np.empty((1, 1), field.storage_dtype))

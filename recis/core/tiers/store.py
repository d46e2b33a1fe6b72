"""``TieredRowStore``: a table's rows in RAM and on disk, behind the ``RowStore`` API.

Every row (embedding, optimizer slots, policy slots) has a home in the *cold* tier, a
:class:`~recis.core.row_store.RowStore` of memory-mapped files (:class:`DiskRows`), indexed by
the row numbers of the table's id map; at most ``StorageTiers.ram_bytes`` of them are also in the
*hot* tier, a RowStore in RAM, where their current values are. A :class:`Residency` tracks which
rows are hot and chooses the ones that leave. :meth:`TieredRowStore.promote` brings the rows of a
training batch in (written back rows going out), and :meth:`TieredRowStore.place_new` gives new
rows hot slots without reading them. Every other operation takes rows wherever they are:
:meth:`~TieredRowStore.plan` gives a plain :class:`~recis.core.row_store.RowPlan` over the hot
tier's rows (the kernels of :meth:`~TieredRowStore.blocks` use it) when all rows are hot, else a
:class:`TieredPlan`. Rows move as raw bits, so values never depend on where a row is.

A GPU table's tiers (device memory over mapped pinned host memory) are
:class:`~recis.core.tiers.device.DeviceTieredRowStore`, placed by the same Residency.

>>> import numpy as np
>>> from recis.core.tiers.config import StorageTiers
>>> store = TieredRowStore(dim=2, block_rows=4, name="t", tiers=StorageTiers(ram_bytes=16))
>>> store.ensure_rows(6)
>>> store.place_new(np.array([0, 1]))  # two rows of 8 bytes fill the RAM budget
>>> store.scatter(np.array([0, 1]), np.array([[1, 2], [3, 4]], np.float32))
>>> store.promote(np.array([5]))  # row 0 (least recently used) goes to disk
>>> store.tier_stats()["demotions"], store.gather(np.array([0, 1])).tolist()
(1, [[1.0, 2.0], [3.0, 4.0]])
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from recis.core.row_store import EMBEDDING, RowPlan, RowStore
from recis.core.tiers.config import StorageTiers
from recis.core.tiers.disk import DiskRows
from recis.core.tiers.residency import Residency


class TieredPlan(NamedTuple):
    """Rows split by tier: positions ``hot_positions`` of the rows are hot (``hot``: a plan of
    the hot tier's rows), the others cold (``cold``: a plan of the cold tier's rows)."""

    size: int
    hot_positions: np.ndarray
    hot: RowPlan
    cold_positions: np.ndarray
    cold: RowPlan


class TieredRowStore:
    """Rows of ``dim`` values of ``dtype`` plus named slots, in the tiers of ``tiers``
    (:class:`~recis.core.tiers.config.StorageTiers`); see the module docstring. The arguments
    are those of :class:`~recis.core.row_store.RowStore` (``block_rows``: of the cold tier)."""

    device = "cpu"

    def __init__(
        self, dim: int, dtype=np.float32, block_rows: int = 16384, name: str = "table", *,
        tiers: StorageTiers,
    ) -> None:  # fmt: skip
        self.name = name
        self.dim = dim
        self.block_rows = block_rows
        self.tiers = tiers
        self.cold = self._new_cold(RowStore(dim, dtype, block_rows, name))
        self.residency = Residency(self._slots(), tiers.policy)
        self.hot = self._new_hot()
        self.counts = {"hits": 0, "misses": 0, "promotions": 0, "demotions": 0, "placed": 0}

    def _new_cold(self, like: RowStore) -> RowStore:
        """An empty disk RowStore with the fields of ``like``."""
        self.disk = DiskRows(self.name, self.tiers.directory, self.tiers.disk_bytes)
        return _with_fields(like, self.block_rows, ops=self.disk)

    def _new_hot(self) -> RowStore:
        """An empty RAM RowStore with the cold tier's fields, in blocks of at most an eighth of
        the hot slots (so that RAM passes its budget by little)."""
        rows = min(self.block_rows, 1 << max(0, (self.residency.slots // 8).bit_length() - 1))
        return _with_fields(self.cold, rows)

    def _slots(self) -> int:
        row_bytes = self.cold._row_bytes()
        if self.tiers.ram_bytes < row_bytes:
            raise ValueError(
                f"table {self.name!r}: StorageTiers.ram_bytes={self.tiers.ram_bytes} holds not "
                f"even one row ({row_bytes} bytes with its slots)"
            )
        slots = self.tiers.ram_bytes // row_bytes
        if slots >= 2**31:
            raise ValueError(f"table {self.name!r}: a RAM tier holds fewer than 2**31 rows")
        return slots

    @property
    def fields(self):
        return self.cold.fields

    @property
    def num_blocks(self) -> int:
        return self.cold.num_blocks

    @property
    def capacity(self) -> int:
        """Rows that fit without growing (every row has a place on disk)."""
        return self.cold.capacity

    @property
    def nbytes(self) -> int:
        """Bytes held in RAM: the hot tier's blocks and the residency's bookkeeping."""
        return self.hot.nbytes + self.residency.nbytes

    @property
    def block_bytes(self) -> int:
        """Bytes of RAM one more hot block takes."""
        return self.hot.block_bytes

    def _row_bytes(self) -> int:
        return self.cold._row_bytes()

    def add_slot(self, name: str, shape: tuple[int, ...] = (), dtype=np.float32, fill=0.0):
        """Add a per-row slot (existing rows get ``fill``); the rows in RAM go to disk first,
        as fewer rows now fit the budget."""
        rows, slots = self.residency.push_out_all()
        self._copy(self.hot, slots, self.cold, rows)
        self.counts["demotions"] += rows.size
        self.cold.add_slot(name, shape, dtype, fill)
        self.residency.resize(self._slots())
        self.hot = self._new_hot()

    def ensure_rows(self, num_rows: int, fill: bool = True) -> None:
        """Add disk blocks until rows ``[0, num_rows)`` exist (see ``RowStore.ensure_rows``)."""
        self.cold.ensure_rows(num_rows, fill)
        self.residency.grow(self.cold.capacity)

    def promote(self, rows: np.ndarray, counts=1) -> None:
        """Record a training use of the distinct ``rows`` (-1 skipped; each used ``counts``
        times) and bring them into RAM, as many as fit beside the other rows of the call."""
        used = rows >= 0
        if not used.all():
            rows = rows[used]
            counts = counts[used] if np.ndim(counts) else counts
        self.residency.touch(rows, counts)
        cold = rows[self.residency.slot_of[rows] < 0]
        self.counts["hits"] += rows.size - cold.size
        self.counts["misses"] += cold.size
        if cold.size:
            moved = self._bring_in(cold, rows, read=True)
            self.counts["promotions"] += moved

    def place_new(self, rows: np.ndarray) -> None:
        """Give the distinct ``rows`` of new ids (-1 skipped) hot slots where they fit, without
        reading them: the caller writes every field of them."""
        rows = rows[rows >= 0]
        self.residency.restart(rows)
        cold = rows[self.residency.slot_of[rows] < 0]
        if cold.size:
            self.counts["placed"] += self._bring_in(cold, rows, read=False)

    def _bring_in(self, rows: np.ndarray, protected: np.ndarray, read: bool) -> int:
        moves = self.residency.admit(rows, protected)
        self._copy(self.hot, moves.slots_out, self.cold, moves.rows_out)
        self.counts["demotions"] += moves.rows_out.size
        self.hot.ensure_rows(self.residency.used, fill=False)
        if read:
            self._copy(self.cold, moves.rows_in, self.hot, moves.slots_in)
        return moves.rows_in.size

    def _copy(self, source: RowStore, rows, target: RowStore, to_rows) -> None:
        """Copy every field of ``source``'s ``rows`` to ``target``'s ``to_rows``, bit for bit."""
        if not rows.size:
            return
        plan, to_plan = source.plan(rows, distinct=True), target.plan(to_rows, distinct=True)
        for name, spec in self.fields.items():
            words = source.gather(plan, name, dtype=spec.storage_dtype)
            target.scatter(to_plan, words, name)

    def plan(self, rows, distinct: bool = False) -> RowPlan | TieredPlan:
        """Prepare ``rows`` for several gathers/scatters: a plan of the hot tier's rows when all
        are hot (what the kernels of :meth:`blocks` take), else a :class:`TieredPlan`."""
        rows = np.ascontiguousarray(rows, np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= self.capacity):
            raise IndexError(
                f"RowStore {self.name!r}: rows must lie in [0, {self.capacity}), "
                f"got [{rows.min()}, {rows.max()}]"
            )
        slots = self.residency.slot_of[rows]
        hot = slots >= 0
        if hot.all():
            return self.hot.plan(slots, distinct)
        hot_positions, cold_positions = np.flatnonzero(hot), np.flatnonzero(~hot)
        return TieredPlan(
            rows.size,
            hot_positions,
            self.hot.plan(slots[hot_positions], distinct),
            cold_positions,
            self.cold.plan(rows[cold_positions], distinct),
        )

    def gather(self, rows, field: str = EMBEDDING, dtype=None) -> np.ndarray:
        """Copy of ``field`` at ``rows``, from whichever tier holds each (see
        ``RowStore.gather``)."""
        plan = self._plan(rows)
        if isinstance(plan, RowPlan):
            return self.hot.gather(plan, field, dtype)
        hot = self.hot.gather(plan.hot, field, dtype)
        cold = self.cold.gather(plan.cold, field, dtype)
        out = np.empty((plan.size, *hot.shape[1:]), hot.dtype)
        out[plan.hot_positions] = hot
        out[plan.cold_positions] = cold
        return out

    def scatter(self, rows, values, field: str = EMBEDDING) -> None:
        """Write ``values[i]`` to row ``rows[i]`` of ``field``, in its tier (see
        ``RowStore.scatter``)."""
        plan = self._plan(rows)
        if isinstance(plan, RowPlan):
            return self.hot.scatter(plan, values, field)
        values = np.asarray(values)
        if values.shape[:1] != (plan.size,):
            raise ValueError(
                f"RowStore {self.name!r}: {field} values must have {plan.size} rows, "
                f"got {list(values.shape)}"
            )
        self.hot.scatter(plan.hot, values[plan.hot_positions], field)
        self.cold.scatter(plan.cold, values[plan.cold_positions], field)

    def reset(self, rows, fields=None) -> None:
        """Set ``rows`` of the given slots (default: all but the embedding) to their fill."""
        plan = self._plan(rows)
        if isinstance(plan, RowPlan):
            return self.hot.reset(plan, fields)
        self.hot.reset(plan.hot, fields)
        self.cold.reset(plan.cold, fields)

    def blocks(self, field: str = EMBEDDING):
        """The hot tier's blocks of ``field``, which a plan of hot rows (a ``RowPlan`` from
        :meth:`plan`) indexes."""
        return self.hot.blocks(field)

    def clear(self) -> None:
        """Drop every row of both tiers (fields are kept; the disk files are removed)."""
        old = self.disk
        self.cold = self._new_cold(self.cold)
        old.remove()
        self.residency.clear()
        self.hot = self._new_hot()

    def _plan(self, rows):
        return rows if isinstance(rows, (RowPlan, TieredPlan)) else self.plan(rows)

    def tier_stats(self) -> dict:
        """Per tier its rows and bytes (RAM: the hot blocks, and the bookkeeping as
        ``index_bytes``; disk: the files, every row having a place there), and the training
        lookups' ``hits`` (rows found in RAM, new ones included), ``misses``, ``hit_rate``,
        ``promotions`` (rows read into RAM), ``placed`` (new rows given RAM slots) and
        ``demotions`` (rows written out to disk)."""
        looked_up = self.counts["hits"] + self.counts["misses"]
        return {
            "ram": {
                "rows": self.residency.num_hot,
                "bytes": self.hot.nbytes,
                "index_bytes": self.residency.nbytes,
                "budget_bytes": self.tiers.ram_bytes,
            },
            "disk": {"rows": self.cold.capacity, "bytes": self.disk.file_bytes},
            "hit_rate": self.counts["hits"] / looked_up if looked_up else 1.0,
            **self.counts,
        }


def _with_fields(like: RowStore, block_rows: int, ops=None) -> RowStore:
    """An empty RowStore of ``block_rows`` rows per block with the fields of ``like``."""
    store = RowStore(like.dim, like.fields[EMBEDDING].dtype, block_rows, like.name, ops=ops)
    for name, spec in list(like.fields.items())[1:]:
        store.add_slot(name, spec.shape, spec.dtype, spec.fill)
    return store

"""``DeviceTieredRowStore``: a GPU table's rows in device memory over pinned host memory.

Every row (embedding, optimizer slots, policy slots) has a home in pinned host memory mapped
into the device's address space; at most ``DeviceTiers.device_bytes`` of rows also have a hot
slot in device memory, where their current values are. Both tiers are the blocks of one device
:class:`~recis.core.row_store.RowStore` (:class:`~recis.core.cuda.tiers.TierBlocks`): the hot
slots first, a fixed span of blocks, then the homes. Operations address a row by its
*location* (:meth:`DeviceTieredRowStore.plan`: its slot if hot, else its home), so every GPU
kernel that takes a row store's blocks reads and writes a cold row in host memory as it does a
hot one, and no lookup waits to move rows.

A :class:`~recis.core.tiers.residency.Residency` on the host decides which rows are hot, by the
same LRU/LFU scores as the CPU tiers: :meth:`~DeviceTieredRowStore.promote` brings the rows of a
training batch into device memory and demotes the lowest-scored ones to their homes (its rows go
to the host for that: a tiered table's training lookups wait for the device, as those of tables
with policies do); a device copy of the residency's slot numbers serves the kernels. Rows move
bit for bit, so values never depend on the tier.

>>> import numpy as np
>>> from recis.core.tiers.config import DeviceTiers
>>> DeviceTieredRowStore.__name__  # needs CuPy (or the test stand-in) to make one
'DeviceTieredRowStore'
"""

from __future__ import annotations

import numpy as np

from recis.core import arrays as interop
from recis.core.cuda import tiers as kernels
from recis.core.row_store import EMBEDDING, RowStore
from recis.core.tiers.config import DeviceTiers
from recis.core.tiers.residency import Residency


class DeviceTieredRowStore:
    """Rows of ``dim`` values of ``dtype`` plus named slots in the tiers of ``tiers``
    (:class:`~recis.core.tiers.config.DeviceTiers`); see the module docstring. Device memory
    passes ``device_bytes`` by less than one block of ``block_rows`` rows."""

    device = "cuda"

    def __init__(
        self, dim: int, dtype=np.float32, block_rows: int = 16384, name: str = "table", *,
        tiers: DeviceTiers,
    ) -> None:  # fmt: skip
        self.name = name
        self.dim = dim
        self.block_rows = block_rows
        self.tiers = tiers
        self.residency = Residency(0, tiers.policy)
        self.ops = kernels.TierBlocks(name, 0, tiers.host_bytes)
        self._lay_out(RowStore(dim, dtype, block_rows, name))
        self.counts = {"hits": 0, "misses": 0, "promotions": 0, "demotions": 0, "placed": 0}

    def _lay_out(self, like: RowStore) -> None:
        """Size the hot tier for rows of ``like``'s fields and make ``self.rows``, empty."""
        row_bytes = like._row_bytes()
        slots = self.tiers.device_bytes // row_bytes
        if slots < 1 or slots >= 2**31:
            raise ValueError(
                f"table {self.name!r}: DeviceTiers.device_bytes={self.tiers.device_bytes} must "
                f"hold from 1 to 2**31 - 1 rows of {row_bytes} bytes (with their slots)"
            )
        self.residency.resize(slots)
        self.ops.hot_blocks = -(-slots // self.block_rows)
        self.hot_span = self.ops.hot_blocks * self.block_rows
        self.ops.pinned_bytes = 0
        self.rows = _with_fields(like, self.ops)
        self.rows.ensure_rows(self.hot_span, fill=False)
        self._slot_of = None  # the device copy of residency.slot_of, made on demand

    @property
    def fields(self):
        return self.rows.fields

    @property
    def num_blocks(self) -> int:
        return self.rows.num_blocks - self.ops.hot_blocks

    @property
    def capacity(self) -> int:
        """Rows that fit without growing (every row has a home in host memory)."""
        return self.rows.capacity - self.hot_span

    @property
    def nbytes(self) -> int:
        """Bytes of device memory held: the hot slots and the device copy of their numbers."""
        return self.hot_span * self._row_bytes() + self.residency.slot_of.size * 4

    @property
    def block_bytes(self) -> int:
        """Bytes of pinned host memory one more block takes."""
        return self.rows.block_bytes

    def _row_bytes(self) -> int:
        return self.rows._row_bytes()

    def add_slot(self, name: str, shape: tuple[int, ...] = (), dtype=np.float32, fill=0.0):
        """Add a per-row slot (existing rows get ``fill``): every row goes home first, and the
        rows are copied to a new layout, as fewer rows now fit the device budget (this waits
        for the device)."""
        self._demote_all()
        old, old_span, capacity = self.rows, self.hot_span, self.capacity
        like = _with_fields(old, ops=None, device="cpu")
        like.add_slot(name, shape, dtype, fill)
        self._lay_out(like)
        self.ensure_rows(capacity)
        homes = np.arange(capacity, dtype=np.int64)
        from_plan, to_plan = old.plan(homes + old_span, True), self.rows.plan(homes + self.hot_span)
        for field, spec in old.fields.items():
            words = old.gather(from_plan, field, dtype=spec.storage_dtype)
            self.rows.scatter(to_plan, words, field)
        self._cupy().cuda.Device().synchronize()  # the old blocks go: no kernel may read them

    def ensure_rows(self, num_rows: int, fill: bool = True) -> None:
        """Add pinned blocks until rows ``[0, num_rows)`` have homes (allocating page-locked
        memory waits for the device)."""
        self.rows.ensure_rows(self.hot_span + num_rows, fill)
        self.residency.grow(self.capacity)

    def promote(self, rows, counts=1) -> None:
        """Record a training use of the distinct ``rows`` (-1 skipped; each used ``counts``
        times) and bring them into device memory, as many as fit beside the other rows of the
        call (waits for the device: the residency is kept on the host)."""
        rows = interop.to_host(rows)
        counts = interop.to_host(counts) if np.ndim(counts) else counts
        used = rows >= 0
        if not used.all():
            rows = rows[used]
            counts = counts[used] if np.ndim(counts) else counts
        self.residency.touch(rows, counts)
        cold = rows[self.residency.slot_of[rows] < 0]
        self.counts["hits"] += rows.size - cold.size
        self.counts["misses"] += cold.size
        if cold.size:
            self.counts["promotions"] += self._bring_in(cold, rows, read=True)

    def place_new(self, rows) -> None:
        """Give the distinct ``rows`` of new ids (-1 skipped) hot slots where they fit, without
        reading them: the caller writes every field of them."""
        rows = interop.to_host(rows)
        rows = rows[rows >= 0]
        self.residency.restart(rows)
        cold = rows[self.residency.slot_of[rows] < 0]
        if cold.size:
            self.counts["placed"] += self._bring_in(cold, rows, read=False)

    def _bring_in(self, rows: np.ndarray, protected: np.ndarray, read: bool) -> int:
        moves = self.residency.admit(rows, protected)
        self._move(moves.slots_out, moves.rows_out + self.hot_span)
        self.counts["demotions"] += moves.rows_out.size
        if read:
            self._move(moves.rows_in + self.hot_span, moves.slots_in)
        self._note_slots(moves.rows_out, -1)
        self._note_slots(moves.rows_in, moves.slots_in)
        return moves.rows_in.size

    def _demote_all(self) -> None:
        rows, slots = self.residency.push_out_all()
        self._move(slots, rows + self.hot_span)
        self._note_slots(rows, -1)
        self.counts["demotions"] += rows.size

    def _move(self, source: np.ndarray, target: np.ndarray) -> None:
        """Copy every field from locations ``source`` to ``target``, bit for bit."""
        if not source.size:
            return
        xp = self._cupy()
        source, target = xp.asarray(source), xp.asarray(target)
        for name, spec in self.fields.items():
            kernels.move_rows(self.rows.blocks(name), spec, source, target)

    def _note_slots(self, rows: np.ndarray, slots) -> None:
        """Update the device copy of the rows' slot numbers (made again after growth)."""
        xp = self._cupy()
        known = self.residency.slot_of
        if self._slot_of is None or self._slot_of.size != known.size:
            self._slot_of = xp.asarray(known)
        elif rows.size:
            self._slot_of[xp.asarray(rows)] = xp.asarray(
                np.broadcast_to(slots, rows.shape), np.int32
            )

    def _cupy(self):
        return interop.device_namespace("cuda", f"table {self.name!r}")

    def locate(self, rows):
        """Locations of table ``rows`` (-1 stays -1), what this store's blocks are indexed by."""
        if self._slot_of is None or self._slot_of.size != self.residency.slot_of.size:
            self._note_slots(np.empty(0, np.int64), -1)
        return kernels.locate_rows(rows, self._slot_of, self.hot_span)

    def plan(self, rows, distinct: bool = False):
        """A device plan of the rows' locations, for several gathers/scatters (waits for
        nothing; rows outside ``[0, capacity)`` read as zeros and are not written)."""
        return self.rows.plan(self.locate(rows), distinct)

    def gather(self, rows, field: str = EMBEDDING, dtype=None):
        """Copy of ``field`` at ``rows``, from whichever tier holds each."""
        return self.rows.gather(self._plan(rows), field, dtype)

    def scatter(self, rows, values, field: str = EMBEDDING) -> None:
        """Write ``values[i]`` to row ``rows[i]`` of ``field``, in its tier."""
        self.rows.scatter(self._plan(rows), values, field)

    def reset(self, rows, fields=None) -> None:
        """Set ``rows`` of the given slots (default: all but the embedding) to their fill."""
        self.rows.reset(self._plan(rows), fields)

    def blocks(self, field: str = EMBEDDING):
        """Every block of ``field``, indexed by location (:meth:`locate`)."""
        return self.rows.blocks(field)

    def clear(self) -> None:
        """Drop every row of both tiers (fields are kept)."""
        self._cupy().cuda.Device().synchronize()  # the old blocks go: no kernel may read them
        self.residency.clear()
        self._lay_out(self.rows)

    def _plan(self, rows):
        return rows if isinstance(rows, self.rows._ops.Plan) else self.plan(rows)

    def tier_stats(self) -> dict:
        """Per tier its rows and bytes (device: the hot slots and the device copy of their
        numbers; pinned: the homes, every row having one; ram: the host's record of where each
        row is, ``index_bytes``), and the training lookups' ``hits``, ``misses``,
        ``hit_rate``, ``promotions``, ``placed`` and ``demotions`` (as
        :meth:`~recis.core.tiers.TieredRowStore.tier_stats`)."""
        looked_up = self.counts["hits"] + self.counts["misses"]
        return {
            "device": {
                "rows": self.residency.num_hot,
                "bytes": self.nbytes,
                "budget_bytes": self.tiers.device_bytes,
            },
            "pinned": {"rows": self.capacity, "bytes": self.ops.pinned_bytes},
            "ram": {"index_bytes": self.residency.nbytes},
            "hit_rate": self.counts["hits"] / looked_up if looked_up else 1.0,
            **self.counts,
        }


def _with_fields(like: RowStore, ops, device: str = "cuda") -> RowStore:
    """An empty RowStore with the fields and block size of ``like``, on ``ops`` (None: the
    device's own)."""
    spec = like.fields[EMBEDDING]
    store = RowStore(like.dim, spec.dtype, like.block_rows, like.name, device=device, ops=ops)
    for name, spec in list(like.fields.items())[1:]:
        store.add_slot(name, spec.shape, spec.dtype, spec.fill)
    return store

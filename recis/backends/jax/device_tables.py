"""``DeviceShardedTable``: one physical table's rows sharded row-wise over a process's devices.

With a :class:`~recis.backends.jax.mesh.DataParallel` over ``D`` local devices in each of ``P``
processes, id ``i`` of logical table ``t`` belongs to global shard
``g = mix64(i ^ table_hash(t)) % (P * D)`` (:func:`~recis.distributed.sharding.owners` over
``P * D`` shards): process ``g % P`` — exactly the cross-process owner rule, ``mix64(...) % P`` —
and, there, device ``g // P``. The two levels nest, so ids spread evenly over every device of
every process, and since a checkpoint is keyed by (table, id), one written on ``N`` devices or
processes loads on ``M``.

Each device's shard is an engine table of its own (its ids, rows and optimizer slots); on CPU
host devices it lives in host memory, where the engine runs. A lookup sends each of its
distinct ids to the shard of its device and gathers the rows back in the ids' order; the rows
it hands out are *global* rows, ``local_row * D + device``, so the gradients recorded for them
(one :class:`~recis.core.gradients.GradientBuffer`) go back to their shards when the sparse
optimizer applies them (:class:`DeviceShardedUpdater`). A checkpoint holds the shards merged
(:meth:`DeviceShardedTable.state_dict`); loading one splits its ids by owner again.

Tables with storage tiers, GPU tables and eviction or stateful admission policies are not
sharded over devices (a clear error says so).

>>> import numpy as np
>>> from recis.core.table import EmbeddingTable
>>> table = DeviceShardedTable([EmbeddingTable("item", dim=2) for _ in range(4)])
>>> found = table.lookup(np.arange(8))
>>> [len(shard) for shard in table.shards], len(table)
([1, 2, 2, 3], 8)
>>> (found.rows % 4).tolist() == table.devices_of(np.arange(8)).tolist()
True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from recis.core.arrays import int64_vector
from recis.core.gradients import GradientBuffer
from recis.core.id_map import Entries
from recis.core.optim.in_place import update_by_copies, update_in_place
from recis.core.optim.updater import SparseUpdater
from recis.core.policies import LookupStats
from recis.core.row_store import EMBEDDING
from recis.core.table import EmbeddingTable, Lookup
from recis.distributed.sharding import group_by_owner, owners


class DeviceShardedTable:
    """The ``shards`` (one engine table per device, built alike) of one physical table, in a
    process among ``processes`` (see the module docstring). It looks up, stores and restores
    like an :class:`~recis.core.table.EmbeddingTable`, with global rows."""

    def __init__(self, shards: Sequence[EmbeddingTable], processes: int = 1) -> None:
        first = shards[0]
        _check_shardable(first)
        self.shards = list(shards)
        self.processes = processes
        self.name, self.dim, self.children = first.name, first.dim, first.children
        self.device, self.xp = first.device, first.xp
        self.initializer, self.seed = first.initializer, first.seed
        self.admission, self.eviction, self.storage = first.admission, None, None
        self.grads = GradientBuffer(first.dim)
        self.store = _ShardedStores(self)
        self.ids = _ShardedIds(self)
        self.stats_total = LookupStats()
        self.last_stats = LookupStats()
        self.changes = None
        self.sync_free = False

    def __len__(self) -> int:
        return sum(len(shard) for shard in self.shards)

    def __repr__(self) -> str:
        devices = self.num_devices
        return f"DeviceShardedTable({self.name!r}, dim={self.dim}, ids={len(self)}, {devices=})"

    @property
    def num_devices(self) -> int:
        return len(self.shards)

    def devices_of(self, ids: np.ndarray, tags=None) -> np.ndarray:
        """The device (shard index) of each id of logical tables ``tags``."""
        shards = self.processes * self.num_devices
        return owners(ids, tags, self.children, shards) // self.processes

    def by_device(self, ids: np.ndarray, tags=None):
        """``(device, positions)`` of the ids each shard holds."""
        order, counts = group_by_owner(self.devices_of(ids, tags), self.num_devices)
        bounds = np.concatenate([[0], np.cumsum(counts)])
        return [(d, order[bounds[d] : bounds[d + 1]]) for d in range(self.num_devices)]

    def by_row(self, rows: np.ndarray):
        """``(device, positions, local rows)`` of global ``rows`` (rows of -1 left out)."""
        rows = np.asarray(rows, np.int64)
        device = np.where(rows >= 0, rows % self.num_devices, self.num_devices)
        order, counts = group_by_owner(device, self.num_devices + 1)
        bounds = np.concatenate([[0], np.cumsum(counts)])
        parts = []
        for d in range(self.num_devices):
            positions = order[bounds[d] : bounds[d + 1]]
            parts.append((d, positions, rows[positions] // self.num_devices))
        return parts

    def _global(self, local: np.ndarray, device: int) -> np.ndarray:
        return np.where(local >= 0, local * self.num_devices + device, -1)

    def lookup(self, ids, tags=None, counts=None, train=True, admission=None, tags_checked=False):
        """:meth:`EmbeddingTable.lookup` of distinct ``ids``, each on its device's shard."""
        ids = int64_vector(ids, "ids")
        rows = np.full(ids.size, -1, np.int64)
        values = np.empty((ids.size, self.dim), np.float32)
        stats = LookupStats()
        for d, take in self.by_device(ids, tags):
            found = self.shards[d].lookup(
                ids[take], _take(tags, take), None if counts is None else counts[take], train,
                admission, tags_checked,
            )  # fmt: skip
            rows[take] = self._global(found.rows, d)
            values[take] = found.values
            stats += found.stats
        self.stats_total += stats
        self.last_stats = stats
        return Lookup(rows, values, stats)

    def lookup_batch(self, ids, tags=None, *, tags_checked=False) -> None:
        """Not fused here: the caller deduplicates and calls :meth:`lookup`."""
        return None

    def find(self, ids, tags=None) -> np.ndarray:
        """Global rows of ``ids``; -1 for ids no shard holds."""
        ids = int64_vector(ids, "ids")
        rows = np.full(ids.size, -1, np.int64)
        for d, take in self.by_device(ids, tags):
            rows[take] = self._global(self.shards[d].find(ids[take], _take(tags, take)), d)
        return rows

    def insert_new(self, ids, tags=None) -> np.ndarray:
        """Global rows for absent, distinct ``ids``, initialised on their shards."""
        ids = int64_vector(ids, "ids")
        rows = np.empty(ids.size, np.int64)
        for d, take in self.by_device(ids, tags):
            rows[take] = self._global(self.shards[d].insert_new(ids[take], _take(tags, take)), d)
        return rows

    def erase(self, ids, tags=None) -> np.ndarray:
        """Remove ``ids`` from their shards; returns their former global rows."""
        ids = int64_vector(ids, "ids")
        rows = np.full(ids.size, -1, np.int64)
        for d, take in self.by_device(ids, tags):
            rows[take] = self._global(self.shards[d].erase(ids[take], _take(tags, take)), d)
        return rows

    def gather(self, rows, field: str = EMBEDDING) -> np.ndarray:
        """float32 ``field`` at global ``rows`` (-1 reads zeros)."""
        rows = np.asarray(rows, np.int64)
        out = np.zeros((rows.size, *self.store.fields[field].shape), np.float32)
        for d, positions, local in self.by_row(rows):
            out[positions] = self.shards[d].gather(local, field)
        return out

    def initial_values(self, ids, tags=None) -> np.ndarray:
        return self.shards[0].initial_values(ids, tags)

    def written(self, rows) -> None:
        """Nothing to note: shards track no changes."""

    def state_dict(self) -> dict[str, np.ndarray]:
        """The shards' states merged into one table's: ids, tags, global rows and fields, the
        row allocator of the global rows (no free rows: a load packs each shard's rows)."""
        parts = [shard.state_dict() for shard in self.shards]
        rows = [self._global(p["row"], d) for d, p in enumerate(parts)]
        state = {"row": np.concatenate(rows)}
        for key in ("id", "tag", *self.store.fields):
            state[key] = np.concatenate([p[key] for p in parts])
        order = np.argsort(state["row"], kind="stable")
        state = {k: v[order] for k, v in state.items()}
        high = max((int(p["rows.high_water"]) for p in parts), default=0)
        state["rows.high_water"] = np.array(high * self.num_devices)
        state["rows.free"] = np.empty(0, np.int64)
        return state

    def load_state_dict(self, state: dict[str, np.ndarray], strict: bool = True) -> None:
        """Restore a table's state (this one's, or any table's of the same fields): each id
        goes to the shard of its device, its rows packed there in their saved order."""
        keys = ("id", "tag", *self.store.fields)
        missing = sorted(set(keys) - set(state))
        if missing:
            raise KeyError(f"table {self.name!r}: the state lacks {missing}")
        unknown = sorted(set(state) - set(keys) - {"row", "rows.high_water", "rows.free"})
        if unknown and strict:
            raise KeyError(f"table {self.name!r}: the state has fields this table lacks: {unknown}")
        ids, tags = np.asarray(state["id"], np.int64), np.asarray(state["tag"], np.int64)
        for d, take in self.by_device(ids, tags):
            part = {k: np.asarray(state[k])[take] for k in keys}
            part["row"] = np.arange(take.size, dtype=np.int64)
            part["rows.high_water"] = np.array(take.size)
            part["rows.free"] = np.empty(0, np.int64)
            self.shards[d].load_state_dict(part, strict=strict)

    def stats(self) -> dict:
        """:meth:`EmbeddingTable.stats` of the shards together: sizes and bytes summed (the
        growth peak is the largest shard's growth on top of the rest), ``shards`` each one's.

        >>> from recis.core.table import EmbeddingTable
        >>> table = DeviceShardedTable([EmbeddingTable("t", dim=2) for _ in range(2)])
        >>> _ = table.lookup(np.arange(100))
        >>> stats = table.stats()
        >>> stats["size"], stats["capacity"], [shard["size"] for shard in stats["shards"]]
        (100, 2048, [51, 49])
        """
        shards = [shard.stats() for shard in self.shards]
        total = {key: sum(s[key] for s in shards) for key in _ADDED_STATS}
        growth = max(s["growth_peak_bytes"] - s["bytes"] for s in shards)
        tiers = {
            tier: sum(s["tier_bytes"][tier] for s in shards) for tier in shards[0]["tier_bytes"]
        }
        return {
            **total,
            "name": self.name,
            "dim": self.dim,
            "load_factor": total["size"] / total["capacity"],
            "bytes_per_id": total["bytes"] / max(total["size"], 1),
            "tier_bytes": tiers,
            "growth_peak_bytes": total["bytes"] + growth,
            "shards": shards,
        }


_ADDED_STATS = (
    "size", "capacity", "rows_high_water", "rows_free", "row_blocks", "id_map_bytes",
    "row_bytes", "admission_bytes", "bytes",
)  # fmt: skip


class _ShardedStores:
    """The shards' row stores seen as one, addressed by global rows."""

    def __init__(self, table: DeviceShardedTable) -> None:
        self.table = table
        self.device = table.device

    @property
    def fields(self):
        return self.table.shards[0].store.fields

    def add_slot(self, *args, **kwargs) -> None:
        for shard in self.table.shards:
            shard.store.add_slot(*args, **kwargs)

    def scatter(self, rows, values, field: str = EMBEDDING) -> None:
        for d, positions, local in self.table.by_row(rows):
            self.table.shards[d].store.scatter(local, np.asarray(values)[positions], field)


class _ShardedIds:
    """The shards' id maps seen as one, with global rows."""

    def __init__(self, table: DeviceShardedTable) -> None:
        self.table = table

    def export(self) -> Entries:
        parts = [shard.ids.export() for shard in self.table.shards]
        rows = [self.table._global(p.rows, d) for d, p in enumerate(parts)]
        return Entries(
            np.concatenate([p.keys for p in parts]),
            np.concatenate([p.tags for p in parts]),
            np.concatenate(rows),
        )


class DeviceShardedUpdater(SparseUpdater):
    """A :class:`~recis.core.optim.updater.SparseUpdater` that also updates
    :class:`DeviceShardedTable` s: each row on its shard, with the table's one step count."""

    def _apply(self, table, lr: float, rows, grads) -> None:
        if not isinstance(table, DeviceShardedTable):
            return super()._apply(table, lr, rows, grads)
        self.steps[table.name] += 1
        step = self.steps[table.name]
        for d, positions, local in table.by_row(rows):
            store, part = table.shards[d].store, grads[positions]
            if not update_in_place(self.rule, store, local, part, step, lr):
                update_by_copies(self.rule, store, local, part, step, lr)
        return None


def sharded_table_factory(
    make_table: Callable[[], EmbeddingTable], devices: int, processes: int
) -> Callable[[], DeviceShardedTable]:
    """A function building a :class:`DeviceShardedTable` of ``devices`` tables of
    ``make_table``."""
    return lambda: DeviceShardedTable([make_table() for _ in range(devices)], processes)


def _check_shardable(table: EmbeddingTable) -> None:
    reason = None
    if table.device != "cpu":
        reason = f"it lives on {table.device!r}"
    elif table.storage is not None:
        reason = "it has storage tiers"
    elif table.eviction is not None or table.admission.stateful:
        reason = "it has an eviction or a stateful admission policy"
    if reason is not None:
        raise NotImplementedError(
            f"table {table.name!r} cannot be sharded over devices: {reason}; shard it over "
            "processes, or leave its embedder's mesh unset"
        )


def _take(tags, positions: np.ndarray):
    return tags if tags is None or np.ndim(tags) == 0 else tags[positions]

"""``EmbeddingTable``: a growable embedding table keyed by raw int64 ids.

An :class:`~recis.core.id_map.IdMap` maps ids to rows of a :class:`~recis.core.row_store.RowStore`.
A row created for a new id starts at the initializer's value for (seed, table name, id), whatever
the order in which ids arrive; its slots (optimizer state) start at their fill values.

One physical table can hold several logical tables of the same dim, dtype and initializer
(``children``): ids then come with a tag, the index of their logical table, and keep their full
64 bits; a row's initial value depends on the logical table's name.

``EmbeddingTable(..., device="cuda")`` keeps its id map, rows and gradients on the GPU: ids are
CuPy arrays (NumPy ids are copied to the device), results are CuPy arrays equal to the CPU
table's, and the CUDA kernels run on CuPy's current stream. Only :meth:`state_dict` and
:meth:`load_state_dict` exchange NumPy arrays, for checkpoints. Without admission and eviction
policies such a table is :attr:`~EmbeddingTable.sync_free`: its training lookups and updates
never wait for the device.

>>> import numpy as np
>>> from recis.core.initializers import NormalInitializer
>>> table = EmbeddingTable("item", dim=4, initializer=NormalInitializer(std=0.1), seed=7)
>>> rows = table.find_or_insert(np.array([10, 11, 10])).rows
>>> values = table.gather(rows)
>>> values.shape, bool((values[0] == values[2]).all())
((3, 4), True)
>>> table.gather(table.find(np.array([12]))).tolist()  # a missing id reads as zeros
[[0.0, 0.0, 0.0, 0.0]]
"""

from __future__ import annotations

import weakref
from types import ModuleType
from typing import NamedTuple

import numpy as np

from recis.core import arrays as interop
from recis.core.arrays import array_module, int64_vector
from recis.core.dedupe import occurrence_counts
from recis.core.gradients import GradientBuffer
from recis.core.id_map import Entries, IdMap, Inserted
from recis.core.initializers import ConstantInitializer, Initializer
from recis.core.policies import Admission, AdmitAll, Eviction, LookupStats
from recis.core.row_changes import RowChanges
from recis.core.row_store import EMBEDDING, RowPlan, RowStore
from recis.core.tiers import DeviceTieredRowStore, DeviceTiers, StorageTiers, TieredRowStore


class Lookup(NamedTuple):
    """Result of :meth:`EmbeddingTable.lookup`: ``rows`` (-1: no row), float32 ``values``."""

    rows: np.ndarray
    values: np.ndarray
    stats: LookupStats


class BatchLookup(NamedTuple):
    """Result of :meth:`EmbeddingTable.lookup_batch`: the batch's distinct ids were first seen
    at ``positions`` (in order) and occur ``counts`` times; ``index[i]`` is the number of id
    ``i``'s among them; ``rows`` and float32 ``values`` are theirs."""

    positions: np.ndarray
    index: np.ndarray
    counts: np.ndarray
    rows: np.ndarray
    values: np.ndarray
    stats: LookupStats


_LIVE: weakref.WeakSet = weakref.WeakSet()


def live_tables() -> list[EmbeddingTable]:
    """Every engine table alive in this process (e.g. for hooks that report on all tables)."""
    return list(_LIVE)


class EmbeddingTable:
    """Ids → rows of ``dim`` values, created on first sight and initialised per id.

    Args:
        name: the table's name (errors, checkpoints, and the per-id initial values).
        dim: values per row.
        initializer: initial values of new rows (default: zeros, as RecIS).
        seed: seed of the initializer's counter-based generator.
        dtype: storage dtype of the rows; lookups return float32.
        block_rows: rows per storage block.
        capacity: initial id-map slots; pass the expected id count to avoid rehashing.
        max_size: optional cap on the number of ids (an insert past it raises).
        children: names of the logical tables stored here (default: ``[name]``); tag ``i`` of
            the lookups below means ``children[i]``.
        admission: which new ids get rows in training lookups (default: all).
        eviction: optional eviction policy (its usage slot is added to the rows).
        device: ``"cpu"`` (NumPy arrays) or ``"cuda"`` (CuPy arrays on the current device);
            a policy must be able to run there (``runs_on_gpu``).
        storage: optional :class:`~recis.core.tiers.StorageTiers`: rows beyond its RAM budget
            live on disk (CPU tables; default: every row in RAM), or for a GPU table
            :class:`~recis.core.tiers.DeviceTiers`: rows beyond its device budget live in pinned
            host memory that the kernels read directly (default: every row on the device).
    """

    def __init__(
        self,
        name: str,
        dim: int,
        initializer: Initializer | None = None,
        seed: int = 0,
        dtype=np.float32,
        block_rows: int = 16384,
        capacity: int = 1024,
        max_size: int | None = None,
        children: list[str] | None = None,
        admission: Admission | None = None,
        eviction: Eviction | None = None,
        device: str = "cpu",
        storage: StorageTiers | DeviceTiers | None = None,
    ) -> None:
        _check_storage(name, storage, device, eviction)
        self.name = name
        self.dim = dim
        self.device = device
        self.xp: ModuleType = interop.device_namespace(device, f"table {name!r}")
        self.initializer = initializer if initializer is not None else ConstantInitializer()
        self.seed = seed
        self.children = list(children) if children is not None else [name]
        self.admission = self._placed(admission if admission is not None else AdmitAll())
        self.eviction = self._placed(eviction)
        self.ids = IdMap(name, capacity=capacity, max_size=max_size, device=device)
        self.storage = storage
        self.store = self._new_store(dtype, block_rows)
        self.grads = GradientBuffer(dim)
        self.stats_total = LookupStats()
        self.last_stats = LookupStats()  # of the last lookup
        self.changes: RowChanges | None = None  # see track_changes
        _LIVE.add(self)
        if eviction is not None:
            self.store.add_slot(eviction.slot, (), np.int64, eviction.slot_fill)

    def _new_store(self, dtype, block_rows: int) -> RowStore | TieredRowStore:
        if self.storage is None:
            return RowStore(self.dim, dtype, block_rows, self.name, device=self.device)
        tiered = DeviceTieredRowStore if self.device == "cuda" else TieredRowStore
        return tiered(self.dim, dtype, block_rows, self.name, tiers=self.storage)

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        device = "" if self.device == "cpu" else f", device={self.device!r}"
        return f"EmbeddingTable({self.name!r}, dim={self.dim}, ids={len(self)}{device})"

    @property
    def sync_free(self) -> bool:
        """Whether training lookups (:meth:`lookup`) and updates never wait for the device: a
        GPU table without admission or eviction policy or storage tiers. Its lookups take
        padded batches (:func:`~recis.core.dedupe.first_occurrences` with ``padded=True``): ids
        with count 0 are padding and get row -1."""
        plain = isinstance(self.admission, AdmitAll) and self.eviction is None
        return self.xp is not np and plain and self.storage is None

    def _placed(self, policy):
        """``policy`` (None passes) checked to run on this table's device, its state moved there."""
        if policy is None:
            return None
        if self.xp is not np and not policy.runs_on_gpu:
            raise NotImplementedError(
                f"table {self.name!r}: policy {type(policy).__name__} cannot run on the GPU yet "
                f"(device={self.device!r}); use a CPU table or a policy that runs on the GPU"
            )
        if isinstance(policy, Admission):
            policy.use_device(self.device)
        return policy

    def _here(self, array, name: str):
        """``array`` (ids, tags or counts; None and scalars pass) on this table's device: host
        arrays are copied to a GPU table, a GPU array given to a CPU table is refused."""
        if array is None or np.ndim(array) == 0:
            return array
        if array_module(array) is not np and self.xp is np:
            raise TypeError(
                f"table {self.name!r} is on cpu: {name} must be a NumPy array, got "
                f"{type(array).__module__}.{type(array).__name__}"
            )
        return self.xp.asarray(array)

    def find(self, ids: np.ndarray, tags=None) -> np.ndarray:
        """Rows of ``ids`` (of logical tables ``tags``); -1 for ids the table does not hold."""
        return self.ids.find(self._here(ids, "ids"), self._here(tags, "tags"))

    def find_or_insert(self, ids: np.ndarray, tags=None, *, tags_checked=False) -> Inserted:
        """Rows of ``ids``, creating and initialising rows for new ids (``tags_checked``: see
        :func:`recis.core.dedupe.tag_vector`)."""
        ids, tags = int64_vector(self._here(ids, "ids"), "ids"), self._here(tags, "tags")
        inserted = self.ids.find_or_insert(ids, tags, tags_checked=tags_checked)
        if inserted.new_rows.size:
            new = inserted.new_positions
            self._initialise(ids[new], _take(tags, new), inserted.new_rows)
        return inserted

    def insert_new(self, ids: np.ndarray, tags=None) -> np.ndarray:
        """Rows for ids known to be absent and distinct (see :meth:`IdMap.insert_new`),
        initialised."""
        ids, tags = self._here(ids, "ids"), self._here(tags, "tags")
        rows = self.ids.insert_new(ids, tags)
        self._initialise(ids, tags, rows)
        return rows

    def _initialise(self, ids: np.ndarray, tags, rows: np.ndarray) -> None:
        """Give new (distinct) ``rows`` their ids' initial values and fresh slots; rows of -1
        (padding) are skipped."""
        self.store.ensure_rows(self.ids.rows.high_water_bound())
        if self.storage is not None:
            self.store.place_new(rows)
        plan = self.store.plan(rows, distinct=True)
        self.store.scatter(plan, self.initial_values(ids, tags))
        self.store.reset(plan)
        if self.changes is not None:
            self.changes.inserted(rows, ids, 0 if tags is None else tags)

    def lookup(
        self,
        ids: np.ndarray,
        tags=None,
        counts=None,
        train: bool = True,
        admission: Admission | None = None,
        tags_checked: bool = False,
    ) -> Lookup:
        """Rows and float32 values of distinct ``ids`` (each seen ``counts`` times, default 1).

        Training lookups insert the new ids that admission (``admission``, default the table's)
        accepts, evicting first if the eviction policy asks, and record usage for eviction. Ids
        without a row get row -1 and read zeros, or their initial value if admission says so.
        Other lookups never insert. A table with storage tiers brings the rows of a training
        lookup into RAM (:meth:`~recis.core.tiers.TieredRowStore.promote`). Without admission
        and eviction policies, training lookups also take padded batches (as :attr:`sync_free`
        tables are given): ids of count 0 are padding, repeating an id of the batch, and get
        row -1. On the GPU the stats' counts are then 0-d device arrays. ``tags_checked``: the
        tags are known to lie in range (see :func:`recis.core.dedupe.tag_vector`).
        """
        xp = self.xp
        ids = int64_vector(self._here(ids, "ids"), "ids")
        tags = self._here(tags, "tags")
        counted = counts is not None  # padding is possible
        counts = xp.ones(ids.size, np.int64) if counts is None else self._here(counts, "counts")
        admission = self._placed(admission) if admission is not None else self.admission
        stats = LookupStats()
        if train and isinstance(admission, AdmitAll) and self.eviction is None:
            inserted = self.find_or_insert(ids, tags, tags_checked=tags_checked)  # one probe each
            rows = xp.where(counts > 0, inserted.rows, -1) if counted else inserted.rows
            stats.new = stats.admitted = inserted.count
        elif train:
            rows = self.find(ids, tags)
            counts = counts.astype(np.int64, copy=False)
            stats = self._insert_admitted(ids, tags, counts, rows, admission)
            used = xp.flatnonzero(rows >= 0)
            if self.eviction is not None:
                self.eviction.touch(self, rows[used], counts[used])
        else:
            rows = self.find(ids, tags)
        if train and self.storage is not None:
            self.store.promote(rows, counts)
        values = self.gather(rows)
        if train and admission.refused_read_initial and stats.refused:
            refused = xp.flatnonzero(rows < 0)
            values[refused] = self.initial_values(ids[refused], _take(tags, refused))
        self.stats_total += stats
        self.last_stats = stats
        return Lookup(rows, values, stats)

    def lookup_batch(self, ids: np.ndarray, tags=None, *, tags_checked=False):
        """The training lookup of a batch of ``ids`` with repeats, deduplicated while the id map
        is probed (:meth:`IdMap.find_or_insert_batch`): what deduplicating the batch and then
        :meth:`lookup` of its distinct ids gives, as a :class:`BatchLookup`. It serves CPU tables
        without admission or eviction policy whose id map has room for the batch; elsewhere it
        returns None (nothing done) for the caller to take that path.

        >>> table = EmbeddingTable("t", dim=2)
        >>> found = table.lookup_batch(np.array([7, 9, 7]))
        >>> found.positions.tolist(), found.index.tolist(), found.counts.tolist()
        ([0, 1], [0, 1, 0], [2, 1])
        """
        if self.xp is not np or self.eviction is not None:
            return None
        if not isinstance(self.admission, AdmitAll):
            return None
        ids, tags = int64_vector(self._here(ids, "ids"), "ids"), self._here(tags, "tags")
        found = self.ids.find_or_insert_batch(ids, tags, tags_checked=tags_checked)
        if found is None:
            return None
        if found.new_rows.size:
            new = found.positions[found.is_new]
            self._initialise(ids[new], _take(tags, new), found.new_rows)
        counts = occurrence_counts(found.index, found.positions.size)
        if self.storage is not None:
            self.store.promote(found.rows, counts)
        stats = LookupStats(new=found.new_rows.size, admitted=found.new_rows.size)
        self.stats_total += stats
        self.last_stats = stats
        values = self.gather(found.rows)
        return BatchLookup(found.positions, found.index, counts, found.rows, values, stats)

    def _insert_admitted(self, ids, tags, counts, rows, admission) -> LookupStats:
        """Insert admitted missing ids, writing their rows into ``rows``."""
        missing = self.xp.flatnonzero(rows < 0)
        if not missing.size:
            return LookupStats()
        admit = admission.admit(ids[missing], _take(tags, missing), counts[missing])
        admitted = missing[admit]
        stats = LookupStats(new=missing.size, admitted=admitted.size)
        stats.refused = stats.new - stats.admitted
        if admitted.size and self.eviction is not None:
            stats.evicted = self.eviction.make_room(self, admitted.size, rows[rows >= 0])
        if admitted.size:
            rows[admitted] = self.insert_new(ids[admitted], _take(tags, admitted))
        return stats

    def evict_stale(self) -> int:
        """Let the eviction policy drop ids that are due; return how many it dropped."""
        evicted = 0 if self.eviction is None else self.eviction.evict_stale(self)
        self.stats_total.evicted += evicted
        return evicted

    def initial_values(self, ids: np.ndarray, tags=None) -> np.ndarray:
        """The values a row for each of ``ids`` starts with (float32 ``[n, dim]``)."""
        ids = int64_vector(self._here(ids, "ids"), "ids")
        if tags is None or np.ndim(tags) == 0:
            return self.initializer(ids, self.dim, self.seed, self.children[int(tags or 0)])
        return self.initializer(
            ids, self.dim, self.seed, self.children, tags=self._here(tags, "tags")
        )

    def gather(self, rows: np.ndarray | RowPlan, field: str = EMBEDDING) -> np.ndarray:
        """float32 copy of ``field`` at ``rows``; a row of -1 reads as zeros.

        On the GPU the store itself reads zeros for such rows, without looking at them first.
        """
        if isinstance(rows, np.ndarray):
            rows = self._here(rows, "rows")
        if not isinstance(rows, np.ndarray) or rows.size == 0 or rows.min() >= 0:
            return self.store.gather(rows, field, dtype=np.float32)
        present = rows >= 0
        shape = self.store.fields[field].shape
        out = interop.zeros((rows.size, *shape), np.float32)
        out[present] = self.store.gather(rows[present], field, dtype=np.float32)
        return out

    def erase(self, ids: np.ndarray, tags=None) -> np.ndarray:
        """Remove ``ids``; their rows (returned, -1 for absent ids) are reused by later inserts."""
        ids, tags = self._here(ids, "ids"), self._here(tags, "tags")
        rows = self.ids.erase(ids, tags)
        if self.changes is not None:
            self.changes.erased(ids, tags, rows)
        return rows

    def track_changes(self) -> RowChanges:
        """Start (or keep) stamping every row write and logging every erasure (see
        :class:`~recis.core.row_changes.RowChanges`), e.g. for exporting deltas."""
        if self.changes is None:
            entries = self.ids.export()
            self.changes = RowChanges(entries.keys, entries.tags, entries.rows)
        return self.changes

    def written(self, rows) -> None:
        """Note that ``rows`` were written outside this class (e.g. by an optimizer step)."""
        if self.changes is not None:
            self.changes.written(rows)

    def state_dict(self) -> dict[str, np.ndarray]:
        """Everything needed to restore this table exactly, as named NumPy arrays (ordered by
        row; copied from the GPU for a ``"cuda"`` table):

        ``id``, ``tag``, ``row``, ``embedding`` and each slot; ``rows.high_water`` and
        ``rows.free`` (the row allocator); ``eviction.step`` and ``admission.*`` when the table
        has such policies.
        """
        entries = self.ids.export()
        order = entries.rows.argsort()  # rows are distinct: any sort is stable
        rows = entries.rows[order]
        plan = self.store.plan(rows, distinct=True)
        state = {"id": entries.keys[order], "tag": entries.tags[order], "row": rows}
        for name, spec in self.store.fields.items():  # raw bits: CuPy has no bfloat16
            words = interop.to_host(self.store.gather(plan, name, dtype=spec.storage_dtype))
            state[name] = words.view(spec.dtype)
        state |= {f"rows.{k}": v for k, v in self.ids.rows.state().items()}
        if self.eviction is not None:
            state["eviction.step"] = np.array(self.eviction.step, np.int64)
        state |= {f"admission.{k}": v for k, v in self.admission.state().items()}
        return {name: interop.to_host(array) for name, array in state.items()}

    def load_state_dict(self, state: dict[str, np.ndarray], strict: bool = True) -> None:
        """Restore :meth:`state_dict`: the same ids, rows, values, slots and policy state.

        With ``strict=False``, fields this table does not have (e.g. optimizer slots when
        loading for inference) and policy state it cannot use are ignored.
        """
        fields = {"id", "tag", "row", *self.store.fields}
        missing = fields - set(state)
        if missing:
            raise KeyError(f"table {self.name!r}: the state lacks {sorted(missing)}")
        unknown = sorted(set(state) - fields - set(self._policy_state_keys(state)))
        if unknown and strict:
            raise KeyError(f"table {self.name!r}: the state has fields this table lacks: {unknown}")
        allocator = _with_prefix(state, "rows.")
        self.ids.load(Entries(state["id"], state["tag"], state["row"]), allocator)
        self.store.ensure_rows(self.ids.rows.high_water)
        rows = self._here(np.asarray(state["row"], np.int64), "row")
        plan = self.store.plan(rows, distinct=True)
        for name, spec in self.store.fields.items():  # raw bits: CuPy has no bfloat16
            words = np.asarray(state[name], spec.dtype).view(spec.storage_dtype)
            self.store.scatter(plan, words, name)
        if self.eviction is not None and "eviction.step" in state:
            self.eviction.step = int(state["eviction.step"])
        if self.admission.stateful:
            self.admission.load_state(_with_prefix(state, "admission."))
        self.changes = None  # every row may differ: deltas start again from a full export

    def _policy_state_keys(self, state) -> list[str]:
        """Keys of ``state`` this table's row allocator and policies read."""
        keys = [k for k in state if k.startswith("rows.")]
        if self.eviction is not None:
            keys += [k for k in state if k.startswith("eviction.")]
        if self.admission.stateful:
            keys += [k for k in state if k.startswith("admission.")]
        return keys

    def stats(self) -> dict:
        """Sizes and memory of the id map, the row store and the admission policy.

        ``bytes`` is what the table's arrays hold: the id map's slots (16 bytes each, a power of
        two of them at most ``max_load`` full) and free-row list (``id_map_bytes``), the row
        store's blocks (rows, optimizer and policy slots: ``row_bytes``) and the admission
        policy's state (``admission_bytes``); ``bytes_per_id`` divides it by the ids held, and
        ``tier_bytes`` splits it by storage tier (all in ``"ram"``, or ``"device"`` for a GPU
        table). It is what :func:`recis.core.memory.estimate_memory` predicts.
        ``growth_peak_bytes`` is what the table holds once its id map next grows: on the CPU the
        slots double in place, on the GPU the old and the new slots exist together during the
        rehash; the row store may add a block at the same time. A table with storage tiers
        counts only what it holds in RAM (on a GPU: in device memory) there, puts its disk files
        under ``tier_bytes["disk"]`` (its pinned host memory under ``tier_bytes["pinned"]``, and
        its host record of where rows are under ``tier_bytes["ram"]``) and
        adds ``tiers``: each tier's rows and bytes with the hit rate, promotions and demotions
        of its training lookups (:meth:`~recis.core.tiers.TieredRowStore.tier_stats`).

        >>> table = EmbeddingTable("t", dim=4)
        >>> _ = table.find_or_insert(np.arange(1000))
        >>> stats = table.stats()
        >>> stats["capacity"], stats["bytes"] == 16 * 2048 + table.store.nbytes
        (2048, True)
        >>> stats["growth_peak_bytes"] - stats["bytes"] == 16 * 2048 + table.store.block_bytes
        True
        """
        id_map, rows, admission = self.ids.nbytes, self.store.nbytes, self.admission.nbytes
        held = id_map + rows + admission
        growth = self.ids.slot_bytes * (1 if self.xp is np else 2)
        tier_bytes = {"ram" if self.xp is np else "device": held}
        if self.storage is not None:
            tiers = self.store.tier_stats()
            if self.xp is np:
                tier_bytes["disk"] = tiers["disk"]["bytes"]
            else:
                tier_bytes["pinned"] = tiers["pinned"]["bytes"]
                tier_bytes["ram"] = tiers["ram"]["index_bytes"]
        return {
            **self.ids.stats(),
            "dim": self.dim,
            "row_blocks": self.store.num_blocks,
            "id_map_bytes": id_map,
            "row_bytes": rows,
            "admission_bytes": admission,
            "bytes": held,
            "bytes_per_id": held / max(len(self), 1),
            "tier_bytes": tier_bytes,
            "growth_peak_bytes": held + growth + self.store.block_bytes,
            **({} if self.storage is None else {"tiers": tiers}),
        }


def _check_storage(name: str, storage, device: str, eviction) -> None:
    """Refuse tiers that do not suit a table on ``device``, naming the table."""
    if storage is None:
        return
    wanted = DeviceTiers if device == "cuda" else StorageTiers
    if not isinstance(storage, wanted):
        raise TypeError(
            f"table {name!r}: storage of a table on {device} must be a {wanted.__name__}, "
            f"got {type(storage).__name__}"
        )
    if device == "cuda" and eviction is not None:
        raise NotImplementedError(
            f"table {name!r}: a GPU table with storage tiers cannot have an eviction policy yet "
            "(its rows leave device memory by the tiers' own policy instead)"
        )


def _with_prefix(state: dict, prefix: str) -> dict:
    """The entries of ``state`` under ``prefix``, with the prefix removed."""
    return {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}


def _take(tags, positions: np.ndarray):
    """Tags of the keys at ``positions``: a per-key array is indexed, a scalar applies to all."""
    return tags if tags is None or np.ndim(tags) == 0 else tags[positions]

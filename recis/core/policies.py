"""Admission and eviction policies of an :class:`~recis.core.table.EmbeddingTable`.

*Admission* decides which new ids get a row during training: :class:`AdmitAll` (the default),
:class:`ReadOnly` (none; missing ids read zeros and their gradients are dropped) and
:class:`FrequencyAdmission` (an id gets a row once it has been seen ``threshold`` times; until then
it reads its initial value and gets no update).

*Eviction* removes ids: :class:`GlobalStepEviction` drops ids not seen for ``filter_step`` steps
when asked (RecIS's ``GlobalStepFilter``); :class:`CapacityEviction` keeps at most ``max_size``
ids by evicting the least recently (``"lru"``) or least frequently (``"lfu"``) used ones when new
ids arrive. Evicted rows, and their optimizer slots, are reset and reused by later ids.

>>> import numpy as np
>>> from recis.core.table import EmbeddingTable
>>> table = EmbeddingTable("t", dim=2, eviction=CapacityEviction(max_size=2, policy="lru"))
>>> table.lookup(np.array([1, 2])).stats.new
2
>>> table.lookup(np.array([2])).stats.new  # id 1 is now the least recently used
0
>>> table.lookup(np.array([3])).stats.evicted, sorted(table.ids.export().keys.tolist())
(1, [2, 3])
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

import numpy as np

from recis.core import arrays as interop
from recis.core.errors import TableFullError
from recis.core.id_map import Entries, IdMap


@dataclass
class LookupStats:
    """What a lookup did: ids ``new`` to the table, of which ``admitted`` got rows and
    ``refused`` did not, and ids ``evicted`` to make room. Counters add up with ``+=``."""

    new: int = 0
    admitted: int = 0
    refused: int = 0
    evicted: int = 0

    def __iadd__(self, other: LookupStats) -> LookupStats:
        self.new += other.new
        self.admitted += other.admitted
        self.refused += other.refused
        self.evicted += other.evicted
        return self

    def as_dict(self) -> dict[str, int]:
        """The counters as ints (counts kept on a GPU are read back: this waits for it)."""
        return {
            "new": int(self.new),
            "admitted": int(self.admitted),
            "refused": int(self.refused),
            "evicted": int(self.evicted),
        }


class Admission(abc.ABC):
    """Which new ids get a row. Refused ids read zeros unless ``refused_read_initial``;
    ``stateful`` policies save :meth:`state` with the table. Policies whose ``runs_on_gpu`` is
    true serve ``"cuda"`` tables, taking their keys as CuPy arrays (the owning table calls
    :meth:`use_device` first)."""

    refused_read_initial = False
    stateful = False
    runs_on_gpu = False

    @abc.abstractmethod
    def admit(self, keys: np.ndarray, tags: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """Mask of the new ``keys`` (distinct, seen ``counts`` times in this batch) to insert,
        on the keys' device."""

    def use_device(self, device: str) -> None:  # noqa: B027 (stateless policies keep nothing)
        """Keep any state on ``device`` (``"cpu"`` or ``"cuda"``), the device of the keys."""

    @property
    def nbytes(self) -> int:
        """Bytes held by the policy's state (0: stateless)."""
        return 0

    def state(self) -> dict[str, np.ndarray]:
        """Arrays to save with the table: NumPy, also for a table on the GPU."""
        return {}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore :meth:`state`."""
        if state:
            raise ValueError(f"{type(self).__name__} keeps no state, got {sorted(state)}")


class AdmitAll(Admission):
    """Every new id gets a row."""

    runs_on_gpu = True

    def admit(self, keys, tags, counts):
        return interop.namespace(keys).ones(keys.size, bool)


class ReadOnly(Admission):
    """No id gets a row: missing ids read zeros and their gradients are dropped."""

    runs_on_gpu = True

    def admit(self, keys, tags, counts):
        return interop.namespace(keys).zeros(keys.size, bool)


class FrequencyAdmission(Admission):
    """An id gets a row when it has been seen ``threshold`` times (every occurrence counts).

    Until then it reads its initializer value and receives no update. Counts of ids not yet
    admitted are kept in a side map, which forgets an id once it is admitted.
    """

    refused_read_initial = True
    stateful = True
    runs_on_gpu = True

    def __init__(self, threshold: int) -> None:
        if threshold < 1:
            raise ValueError(f"FrequencyAdmission: threshold must be >= 1, got {threshold}")
        self.threshold = threshold
        self._seen = IdMap("admission counts")
        self._counts = np.zeros(1024, np.int64)

    def use_device(self, device: str) -> None:
        if device == self._seen.device:
            return
        state = self.state()
        self._seen = IdMap("admission counts", device=device)
        if len(state["keys"]):
            self.load_state(state)
        else:
            self._counts = interop.device_namespace(device).zeros(1024, np.int64)

    def admit(self, keys, tags, counts):
        inserted = self._seen.find_or_insert(keys, tags)
        needed = self._seen.rows.high_water_bound()  # no wait for a GPU's exact count
        if needed > self._counts.size:
            grown = interop.namespace(keys).zeros(2 * needed, np.int64)
            grown[: self._counts.size] = self._counts
            self._counts = grown
        admitted = _advance_counts(self._counts, inserted, counts, self.threshold)
        self._seen.erase(keys[admitted], tags[admitted] if np.ndim(tags) else tags)
        return admitted

    def pending(self) -> int:
        """Ids seen but not yet admitted."""
        return len(self._seen)

    @property
    def nbytes(self) -> int:
        """Bytes of the side map of pending ids and of their counts."""
        return self._seen.nbytes + self._counts.nbytes

    def state(self):
        """The ids seen but not admitted, their tags and counts (NumPy, whatever the device)."""
        entries = self._seen.export()
        state = {"keys": entries.keys, "tags": entries.tags, "counts": self._counts[entries.rows]}
        return {name: interop.to_host(array) for name, array in state.items()}

    def load_state(self, state):
        self._seen.clear()
        xp = interop.device_namespace(self._seen.device)
        keys, tags = xp.asarray(state["keys"]), xp.asarray(state["tags"])
        rows = self._seen.find_or_insert(keys, tags).rows
        self._counts = xp.zeros(max(1024, 2 * rows.size), np.int64)
        self._counts[rows] = xp.asarray(state["counts"])


def _advance_counts(counts, inserted, seen, threshold: int):
    """Add the ``seen`` counts of distinct keys (a new key starts from 0) to ``counts`` at their
    rows; the mask of the keys whose count reached ``threshold``."""
    if isinstance(counts, np.ndarray):
        counts[inserted.new_rows] = 0
        counts[inserted.rows] += seen
        return counts[inserted.rows] >= threshold
    from recis.core.cuda.policies import advance_counts

    return advance_counts(counts, inserted.rows, inserted.is_new, seen, threshold)


@dataclass
class Eviction:
    """Base of eviction policies: a per-row ``slot`` of usage, updated by every training lookup.

    ``step`` is the policy's clock, saved with the table.
    """

    step: int = field(default=0, init=False, repr=False)

    slot = "last_seen"
    slot_fill = -1
    runs_on_gpu = False  # whether it runs on a "cuda" table (see Admission)

    def touch(self, table, rows: np.ndarray, counts: np.ndarray) -> None:
        """Record that ``rows`` (distinct, ≥ 0) were used ``counts`` times by a lookup."""
        bookkeeping(table.store).touch_step(table.store, rows, self.slot, self.step)

    def make_room(self, table, count: int, protected_rows: np.ndarray) -> int:
        """Evict ids so that ``count`` new ones fit; return how many were evicted."""
        return 0

    def evict_stale(self, table) -> int:
        """Evict ids that are due now; return how many."""
        return 0


@dataclass
class GlobalStepEviction(Eviction):
    """RecIS's ``GlobalStepFilter``: ids not looked up in the last ``filter_step`` steps go.

    Lookups stamp rows with ``step``; :meth:`advance` moves the clock (once per training step)
    and :meth:`evict_stale` (every filter interval) erases ids with ``last seen < step -
    filter_step``.
    """

    filter_step: int = 100
    slot = "step_filter"
    runs_on_gpu = True

    def advance(self, steps: int = 1) -> None:
        self.step += steps

    def evict_stale(self, table) -> int:
        entries = table.ids.export()
        threshold = self.step - self.filter_step
        stale = bookkeeping(table.store).stale(table.store, entries.rows, self.slot, threshold)
        _erase_by_row(table, entries, stale)
        return int(stale.size)


@dataclass
class CapacityEviction(Eviction):
    """At most ``max_size`` ids: new ids evict the least recently (``"lru"``) or least
    frequently (``"lfu"``) used ids, never ids of the current lookup; ties go to lower rows."""

    max_size: int = 0
    policy: str = "lru"
    runs_on_gpu = True

    def __post_init__(self) -> None:
        if self.policy not in ("lru", "lfu"):
            raise ValueError(
                f"CapacityEviction: policy must be 'lru' or 'lfu', got {self.policy!r}"
            )
        if self.max_size < 1:
            raise ValueError(f"CapacityEviction: max_size must be >= 1, got {self.max_size}")
        self.slot = "last_used" if self.policy == "lru" else "frequency"
        self.slot_fill = -1 if self.policy == "lru" else 0

    def touch(self, table, rows, counts):
        self.step += 1
        if self.policy == "lru":
            bookkeeping(table.store).touch_step(table.store, rows, self.slot, self.step)
        else:
            bookkeeping(table.store).touch_count(table.store, rows, self.slot, counts)

    def make_room(self, table, count, protected_rows):
        excess = len(table) + count - self.max_size
        if excess <= 0:
            return 0
        entries = table.ids.export()
        xp = interop.namespace(entries.rows)
        candidates = ~xp.isin(entries.rows, protected_rows)
        if int(candidates.sum()) < excess:
            raise TableFullError(
                f"table {table.name!r}: {count} new ids do not fit in max_size {self.max_size} "
                f"even after evicting every id not used by this lookup"
            )
        candidates = Entries(*(a[candidates] for a in entries))
        victims = bookkeeping(table.store).lowest(table.store, candidates.rows, self.slot, excess)
        _erase_by_row(table, candidates, victims)
        return excess


class HostBookkeeping:
    """Usage-slot updates of a CPU row store; :mod:`recis.core.cuda.policies` holds the GPU
    twins (same signatures) that :func:`bookkeeping` picks for a ``"cuda"`` store."""

    @staticmethod
    def touch_step(store, rows: np.ndarray, slot: str, step: int) -> None:
        """Set the usage slot of ``rows`` to ``step``."""
        store.scatter(rows, np.full(rows.size, step, np.int64), slot)

    @staticmethod
    def touch_count(store, rows: np.ndarray, slot: str, counts: np.ndarray) -> None:
        """Add ``counts`` to the usage slot of the distinct ``rows``."""
        plan = store.plan(rows)
        store.scatter(plan, store.gather(plan, slot) + counts, slot)

    @staticmethod
    def stale(store, rows: np.ndarray, slot: str, threshold: int) -> np.ndarray:
        """Positions of the ``rows`` whose usage slot is below ``threshold``."""
        return np.flatnonzero(store.gather(rows, slot) < threshold)

    @staticmethod
    def lowest(store, rows: np.ndarray, slot: str, count: int) -> np.ndarray:
        """Positions of the ``count`` rows with the lowest usage slot, ties to lower rows."""
        return lowest_scores(store.gather(rows, slot), rows, count)


def bookkeeping(store):
    """The usage-slot operations for ``store``'s device."""
    if store.device == "cpu":
        return HostBookkeeping
    from recis.core.cuda import policies

    return policies


def _erase_by_row(table, entries, chosen: np.ndarray) -> None:
    """Erase the chosen entries in row order, so that their rows are reused in an order that
    does not depend on where the keys sit in the id map (a restored table reuses them alike)."""
    rows = entries.rows[chosen]
    order = np.argsort(rows, kind="stable") if isinstance(rows, np.ndarray) else rows.argsort()
    chosen = chosen[order]
    table.erase(entries.keys[chosen], entries.tags[chosen])


def lowest_scores(scores: np.ndarray, rows: np.ndarray, count: int) -> np.ndarray:
    """Indices of the ``count`` lowest scores, ties broken by lower row (deterministic)."""
    threshold = np.partition(scores, count - 1)[count - 1]
    below = np.flatnonzero(scores < threshold)
    ties = np.flatnonzero(scores == threshold)
    ties = ties[np.argsort(rows[ties], kind="stable")][: count - below.size]
    return np.concatenate([below, ties])

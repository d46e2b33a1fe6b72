"""How much memory a table will take, before it is allocated: :func:`estimate_memory`.

The estimate follows the engine's own layout, so it equals what :meth:`EmbeddingTable.stats`
reports once the table holds that many ids:

- the id map: 16 bytes per slot, a power of two of slots at most ``max_load`` full (the map grows
  by doubling, in place on the CPU: while it grows it holds only the larger slot array);
- the rows, in blocks of ``block_rows``: ``dim`` values of ``dtype``, plus each optimizer slot
  (Adagrad: ``dim`` float32, Adam: two times ``dim``) and the eviction policy's usage slot
  (one int64);
- the admission policy's state: :class:`~recis.core.policies.FrequencyAdmission` keeps the ids
  seen but not yet admitted (``pending_ids``) in a map of their own with a count each.

``peak`` adds the working memory of inserting one batch of ``batch`` new ids (41 bytes per id
plus its initial values) and, with an eviction policy, of one eviction scan
(:func:`eviction_scan_bytes`); nothing else is held at once, as the id map grows in place.
Measured resident memory (RSS) also holds what the C allocator keeps of freed temporaries, up to
a few tens of MiB per process, which ``malloc_trim`` returns.

>>> from recis.core.optim import Adagrad
>>> estimate = estimate_memory(ids=1_000_000, dim=8, optimizer=Adagrad())
>>> estimate.parts["id_map"] == 16 * 2**21, estimate.parts["optimizer"] == 62 * 16384 * 8 * 4
(True, True)
>>> estimate.tiers["ram"] / 1e6  # megabytes: about 99 bytes per id
98.566144
>>> estimate.fits
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from recis.core.host_slots import SLOT_BYTES
from recis.core.optim.rule import Rule
from recis.core.policies import Admission, CapacityEviction, Eviction, FrequencyAdmission

TIERS = ("ram",)  # the tiers estimated so far, fastest first
BATCH_BYTES_PER_ID = 41  # an insert's index arrays per new id (rows, positions, flags, ...)
USAGE_SLOT_BYTES = 8  # an eviction policy's last-used step or frequency, one int64 per row


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes of one table: ``tiers`` (held per tier), ``peak`` (the most held at once per tier,
    while growing and inserting a batch), ``parts`` (the RAM bytes by part: ``id_map``,
    ``rows``, ``optimizer``, ``policy``, ``admission``) and the ``budgets`` given per tier."""

    tiers: dict[str, int]
    peak: dict[str, int]
    parts: dict[str, int]
    budgets: dict[str, int | None]

    @property
    def fits(self) -> bool:
        """Whether every tier's peak stays within its budget (``None``: no budget)."""
        return all(b is None or self.peak[t] <= b for t, b in self.budgets.items())


def estimate_memory(
    ids: int,
    dim: int,
    dtype=np.float32,
    optimizer: Rule | None = None,
    *,
    admission: Admission | None = None,
    eviction: Eviction | None = None,
    pending_ids: int = 0,
    batch: int = 0,
    tiers: Mapping[str, int | None] | None = None,
    capacity: int = 1024,
    max_load: float = 0.5,
    block_rows: int = 16384,
) -> MemoryEstimate:
    """Bytes per tier of an :class:`~recis.core.table.EmbeddingTable` holding ``ids`` ids.

    Args:
        ids: ids the table will hold (a :class:`~recis.core.policies.CapacityEviction` caps it
            at its ``max_size``).
        dim, dtype, capacity, block_rows: as given to the table; ``max_load`` as its id map's.
        optimizer: the sparse optimizer rule whose slots sit beside the rows (None: no slots).
        admission, eviction: the table's policies (an eviction policy adds a usage slot).
        pending_ids: under :class:`~recis.core.policies.FrequencyAdmission`, the ids seen but
            not yet admitted at once (its counts are estimated at their largest: 16 bytes each).
        batch: new ids inserted in one call (a training step's distinct new ids), for ``peak``.
        tiers: the storage layout, tier name → byte budget (``None``: unbounded), fastest tier
            first; rows that do not fit a tier's budget go to the next one. Default
            ``{"ram": None}``. Only ``"ram"`` is estimated so far: other tiers raise
            ``NotImplementedError``.
    """
    budgets = _checked_tiers(tiers)
    if ids < 0 or dim < 1:
        raise ValueError(f"estimate_memory: ids must be >= 0 and dim >= 1, got {ids}, {dim}")
    if isinstance(eviction, CapacityEviction):
        ids = min(ids, eviction.max_size)
    row_count = math.ceil(ids / block_rows) * block_rows
    itemsize = np.dtype(dtype).itemsize
    slots = optimizer.slots(dim).values() if optimizer is not None else ()
    parts = {
        "id_map": SLOT_BYTES * id_map_capacity(ids, capacity, max_load),
        "rows": row_count * dim * itemsize,
        "optimizer": row_count
        * sum(math.prod(s.shape) * np.dtype(s.dtype).itemsize for s in slots),
        "policy": row_count * USAGE_SLOT_BYTES if eviction is not None else 0,
        "admission": _admission_bytes(admission, pending_ids),
    }
    held = sum(parts.values())
    working = batch * (BATCH_BYTES_PER_ID + 4 * dim + (itemsize * dim if itemsize != 4 else 0))
    working += eviction_scan_bytes(eviction, ids)
    return MemoryEstimate({"ram": held}, {"ram": held + working}, parts, budgets)


def id_map_capacity(ids: int, capacity: int = 1024, max_load: float = 0.5) -> int:
    """Slots of an id map created with ``capacity`` once it holds ``ids`` keys.

    >>> id_map_capacity(1_000_000), id_map_capacity(1_100_000)
    (2097152, 4194304)
    """
    slots = 1 << max(4, (int(capacity) - 1).bit_length())
    while ids > slots * max_load:
        slots *= 2
    return slots


def eviction_scan_bytes(eviction: Eviction | None, ids: int) -> int:
    """Working memory of one eviction over ``ids`` ids: the policy copies every entry (key, tag,
    row), reads its usage score and selects the victims (bytes per id traced with
    ``tracemalloc``).

    >>> eviction_scan_bytes(CapacityEviction(max_size=10, policy="lfu"), 1000)
    80000
    """
    if eviction is None:
        return 0
    if isinstance(eviction, CapacityEviction):
        return (80 if eviction.policy == "lfu" else 64) * ids
    return 48 * ids


def _admission_bytes(admission: Admission | None, pending_ids: int) -> int:
    if not isinstance(admission, FrequencyAdmission):
        return 0
    counts = max(1024, 2 * pending_ids) * 8
    return SLOT_BYTES * id_map_capacity(pending_ids) + counts


def _checked_tiers(tiers: Mapping[str, int | None] | None) -> dict[str, int | None]:
    budgets = dict(tiers) if tiers is not None else {"ram": None}
    unknown = [name for name in budgets if name not in TIERS]
    if unknown:
        raise NotImplementedError(
            f"estimate_memory: tiers {unknown} are not estimated yet (known: {list(TIERS)})"
        )
    return budgets

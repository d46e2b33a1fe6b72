"""How much memory a table will take, before it is allocated: :func:`estimate_memory`.

The estimate follows the engine's own layout, so it equals what :meth:`EmbeddingTable.stats`
reports once the table holds that many ids:

- the id map: 16 bytes per slot, a power of two of slots at most ``max_load`` full (the map grows
  by doubling, in place on the CPU: while it grows it holds only the larger slot array);
- the rows, in blocks of ``block_rows``: ``dim`` values of ``dtype``, plus each optimizer slot
  (Adagrad: ``dim`` float32, Adam: two times ``dim``) and the eviction policy's usage slot
  (one int64);
- the admission policy's state: :class:`~recis.core.policies.FrequencyAdmission` keeps the ids
  seen but not yet admitted (``pending_ids``) in a map of their own with a count each;
- with storage tiers, every row's home in the slow tier (disk, or pinned host memory), the hot
  tier's rows (at most its budget, in whole blocks) and the record of where each row is (12
  bytes per row and 8 per hot slot, plus on the GPU a 4-byte copy per row on the device).

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
>>> from recis.core.tiers import DeviceTiers
>>> gpu = estimate_memory(10**8, 64, optimizer=Adagrad(), device="cuda",
...                       storage=DeviceTiers(device_bytes=8 << 30))
>>> {tier: round(held / 2**30, 1) for tier, held in gpu.tiers.items()}  # GiB
{'device': 12.4, 'pinned': 47.7, 'ram': 1.2}
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from recis.core.host_slots import SLOT_BYTES
from recis.core.optim.rule import Rule
from recis.core.policies import Admission, CapacityEviction, Eviction, FrequencyAdmission
from recis.core.tiers.config import DeviceTiers, StorageTiers
from recis.core.tiers.residency import tracked_rows

BATCH_BYTES_PER_ID = 41  # an insert's index arrays per new id (rows, positions, flags, ...)
GPU_ALLOCATOR_BYTES = 24  # a GPU row allocator's state: high-water mark, free count, flag
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
    device: str = "cpu",
    storage: StorageTiers | DeviceTiers | None = None,
) -> MemoryEstimate:
    """Bytes per tier of an :class:`~recis.core.table.EmbeddingTable` holding ``ids`` ids.

    Args:
        ids: ids the table will hold (a :class:`~recis.core.policies.CapacityEviction` caps it
            at its ``max_size``).
        dim, dtype, capacity, block_rows, device, storage: as given to the table; ``max_load``
            as its id map's. The tiers are ``"ram"`` (a CPU table), ``"ram"`` and ``"disk"``
            (with :class:`~recis.core.tiers.StorageTiers`), ``"device"`` (a GPU table), or
            ``"device"``, ``"pinned"`` (every row's home) and ``"ram"`` (the host's record of
            which rows are on the device) with :class:`~recis.core.tiers.DeviceTiers`.
        optimizer: the sparse optimizer rule whose slots sit beside the rows (None: no slots).
        admission, eviction: the table's policies (an eviction policy adds a usage slot).
        pending_ids: under :class:`~recis.core.policies.FrequencyAdmission`, the ids seen but
            not yet admitted at once (its counts are estimated at their largest: 16 bytes each).
        batch: new ids inserted in one call (a training step's distinct new ids), for ``peak``.
        tiers: byte budgets by tier name (``None``: unbounded), for :attr:`MemoryEstimate.fits`.
    """
    if ids < 0 or dim < 1:
        raise ValueError(f"estimate_memory: ids must be >= 0 and dim >= 1, got {ids}, {dim}")
    if isinstance(eviction, CapacityEviction):
        ids = min(ids, eviction.max_size)
    row_count = math.ceil(ids / block_rows) * block_rows
    itemsize = np.dtype(dtype).itemsize
    slots = optimizer.slots(dim).values() if optimizer is not None else ()
    slot_bytes = sum(math.prod(s.shape) * np.dtype(s.dtype).itemsize for s in slots)
    policy_bytes = USAGE_SLOT_BYTES if eviction is not None else 0
    allocator = GPU_ALLOCATOR_BYTES if device == "cuda" else 0
    parts = {
        "id_map": SLOT_BYTES * id_map_capacity(ids, capacity, max_load) + allocator,
        "rows": row_count * dim * itemsize,
        "optimizer": row_count * slot_bytes,
        "policy": row_count * policy_bytes,
        "admission": _admission_bytes(admission, pending_ids),
    }
    row_bytes = dim * itemsize + slot_bytes + policy_bytes
    layout = _tier_layout(parts, ids, row_count, row_bytes, block_rows, device, storage)
    working = batch * (BATCH_BYTES_PER_ID + 4 * dim + (itemsize * dim if itemsize != 4 else 0))
    working += eviction_scan_bytes(eviction, ids)
    if device == "cuda":  # the GPU id map rehashes into a new array: the old one is held too
        working += (parts["id_map"] - allocator) // 2
    fast = next(iter(layout))
    peak = {**layout, fast: layout[fast] + working}
    return MemoryEstimate(layout, peak, parts, _checked_budgets(tiers, layout, device, storage))


def _tier_layout(parts, ids, row_count, row_bytes, block_rows, device, storage) -> dict:
    """Bytes per tier, fastest first; adds the hot tier's parts to ``parts``."""
    fast = "device" if device == "cuda" else "ram"
    held = sum(parts.values())
    if storage is None:
        return {fast: held}
    homes = parts["rows"] + parts["optimizer"] + parts["policy"]
    hot_slots = storage.hot_bytes // row_bytes
    index_rows = tracked_rows(row_count)
    index = 12 * index_rows + 8 * hot_slots  # per row its slot and score, per slot its row
    if device == "cuda":
        hot_span = math.ceil(hot_slots / block_rows) * block_rows
        parts["hot_rows"], parts["tier_index"] = hot_span * row_bytes, index + 4 * index_rows
        return {"device": held - homes + parts["hot_rows"] + 4 * index_rows, "pinned": homes,
                "ram": index}  # fmt: skip
    hot_block = min(block_rows, 1 << max(0, (hot_slots // 8).bit_length() - 1))
    parts["hot_rows"] = math.ceil(min(ids, hot_slots) / hot_block) * hot_block * row_bytes
    parts["tier_index"] = index
    return {"ram": held - homes + parts["hot_rows"] + index, "disk": homes}


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


def _checked_budgets(tiers, layout: dict, device: str, storage) -> dict[str, int | None]:
    budgets = dict(tiers) if tiers is not None else {name: None for name in layout}
    unknown = [name for name in budgets if name not in layout]
    if unknown:
        kind = "no storage tiers" if storage is None else type(storage).__name__
        raise ValueError(
            f"estimate_memory: tiers {unknown} are not tiers of a {device} table with {kind} "
            f"(its tiers: {list(layout)})"
        )
    return budgets

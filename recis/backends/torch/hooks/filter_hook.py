"""``HashTableFilterHook``: runs global-step eviction of hash tables (RecIS API).

After every step it advances the clock of each table whose filter is a ``GlobalStepFilter``;
every ``filter_interval`` steps it evicts the ids not looked up in the last ``filter_step`` steps.

>>> import torch
>>> from recis.nn import HashTable
>>> from recis.nn.hashtable_hook import FilterHook
>>> stale_after_1 = FilterHook("GlobalStepFilter", {"filter_step": 1})
>>> table = HashTable([-1, 2], name="t", filter_hook=stale_after_1)
>>> _ = table(torch.tensor([1, 2]))
>>> hook = HashTableFilterHook(filter_interval=2, tables=[table])
>>> hook.after_step(global_step=1); hook.after_step(global_step=2)
>>> len(table.table), hook.evicted
(0, {'t': 2})
"""

from __future__ import annotations

import logging

from recis.backends.torch.hashtable import HashTable, live_hashtables
from recis.core.policies import GlobalStepEviction
from recis.core.threads import beside_framework
from recis.hooks.hook import Hook

logger = logging.getLogger(__name__)


class HashTableFilterHook(Hook):
    """Advance global-step filters every step; evict stale ids every ``filter_interval`` steps.

    Args:
        filter_interval: steps between evictions.
        tables: the tables to act on (default: every live HashTable with such a filter).
    """

    def __init__(self, filter_interval: int = 100, tables: list[HashTable] | None = None) -> None:
        if filter_interval < 1:
            raise ValueError(f"filter_interval must be >= 1, got {filter_interval}")
        self.filter_interval = filter_interval
        self._tables = tables
        self._steps = 0
        self.evicted: dict[str, int] = {}

    def tables(self) -> list[HashTable]:
        candidates = self._tables if self._tables is not None else live_hashtables()
        return [t for t in candidates if isinstance(t.table.eviction, GlobalStepEviction)]

    def state_dict(self) -> dict:
        """Steps seen and evictions per table, for checkpoints."""
        return {"steps": self._steps, "evicted": dict(self.evicted)}

    def load_state_dict(self, state: dict) -> None:
        self._steps = int(state["steps"])
        self.evicted = dict(state["evicted"])

    def reset_filter_interval(self, filter_interval: int) -> None:
        self.filter_interval = filter_interval

    @beside_framework
    def after_step(self, metrics: dict | None = None, global_step: int = 0) -> None:
        self._steps += 1
        tables = self.tables()
        for table in tables:
            table.table.eviction.advance()
        if self._steps % self.filter_interval:
            return
        for table in tables:
            count = table.table.evict_stale()
            self.evicted[table.name] = self.evicted.get(table.name, 0) + count
            logger.info(
                "table %s: evicted %d stale ids, %d left", table.name, count, len(table.table)
            )

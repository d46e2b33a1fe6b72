"""RecIS's per-row slots of a HashTable by name: ``table.slot_group().slot_by_name(name)``.

A table's rows carry, beside the embedding, the optimizer's state and the eviction policy's
bookkeeping. RecIS names them ``"embedding"``, ``"<optimizer>_<state>"`` (e.g.
``"sparse_adagrad_state_sum"``, ``"sparse_adamw_tf_exp_avg"``) and the filter's
``"step_filter"``. :meth:`Slot.value` gives every row of one of them, indexed by row (the rows
of :meth:`~recis.backends.torch.hashtable_access.TableAccess.snap_shot`); a slot of one value per
row is ``[rows, 1]``. Optimizer slots exist once an optimizer of that name updates the table; a
name the table does not hold raises ``RuntimeError`` naming the table and the names it has.

>>> import torch
>>> from recis.backends.torch.hashtable import HashTable
>>> from recis.optim import SparseAdagrad
>>> table = HashTable([-1, 2], name="slots_doc")
>>> optimizer = SparseAdagrad({"slots_doc": table}, initial_accumulator_value=0.5)
>>> table.insert(torch.tensor([8]), torch.ones(1, 2))
>>> _, rows, _ = table.snap_shot()
>>> table.slot_group().slot_by_name("sparse_adagrad_state_sum").value()[rows].tolist()
[[0.5, 0.5]]
"""

from __future__ import annotations

import numpy as np
import torch

from recis.backends.torch.bridge import as_tensor
from recis.core.row_store import EMBEDDING

RECIS_STATE_NAMES = {"state_sum": "sum", "exp_avg": "exp_avg", "exp_avg_sq": "exp_avg_sq"}
"""RecIS's name of an optimizer state (after the optimizer's prefix) → the engine slot's."""


class Slot:
    """One per-row field of a table (see the module docstring)."""

    def __init__(self, table, name: str, field: str) -> None:
        self._table, self.name, self._field = table, name, field

    def value(self) -> torch.Tensor:
        """Every row's value, ``[rows, *shape]`` (``[rows, 1]`` for one value per row)."""
        store = self._table.table.store
        rows = torch.arange(store.capacity, dtype=torch.int64, device=self._table.device)
        integer = store.fields[self._field].dtype.kind in "iu"
        dtype = None if integer else np.float32
        values = as_tensor(store.gather(self._table._engine_ids(rows), self._field, dtype))
        return values.reshape(store.capacity, -1) if values.dim() == 1 else values


class SlotGroup:
    """The slots of a table by RecIS's names (see the module docstring)."""

    def __init__(self, table) -> None:
        self._table = table

    def names(self) -> list[str]:
        """RecIS's names of the slots the table holds."""
        prefix = self._table.recis_slot_prefix
        ours = {field: state for state, field in RECIS_STATE_NAMES.items()}
        names = []
        for field in self._table.table.store.fields:
            if field in ours and prefix is not None:
                names.append(prefix + ours[field])
            elif field == EMBEDDING or field not in ours:
                names.append(field)
        return names

    def slot_by_name(self, name: str) -> Slot:
        """The slot RecIS calls ``name``; ``RuntimeError`` if the table holds none."""
        fields = self._table.table.store.fields
        prefix = self._table.recis_slot_prefix
        field = name if name in fields and name not in RECIS_STATE_NAMES.values() else None
        if prefix is not None and name.startswith(prefix):
            field = RECIS_STATE_NAMES.get(name[len(prefix) :])
        if field is None or field not in fields:
            raise RuntimeError(
                f"HashTable {self._table.name!r} has no slot {name!r}; it has {self.names()}"
            )
        return Slot(self._table, name, field)

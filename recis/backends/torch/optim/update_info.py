"""RecIS's record of what a sparse Adagrad step did (``save_update_info_interval``).

Every ``interval``-th update, :class:`UpdateRecorder` keeps, per table, the rows it changed:
``<table>_updated_grad`` (the gradient the rule received), ``<table>_updated_params_before`` and
``<table>_updated_params_after`` (the rows around the update), ``<table>_updated_state_sum``
(the accumulator before it), ``<table>_updated_ids`` and ``<table>_last_saved_step`` (the
table's update count then). ``get_step_update_info()`` gives the latest record.

>>> import torch
>>> from recis.nn import HashTable
>>> from recis.optim import SparseAdagrad
>>> table = HashTable([-1, 1], name="info_doc")
>>> optimizer = SparseAdagrad({"info_doc": table}, lr=1.0, save_update_info_interval=1)
>>> table(torch.tensor([5])).sum().backward()
>>> optimizer.step()
>>> info = optimizer.get_step_update_info()
>>> info["info_doc_updated_params_after"].tolist(), info["info_doc_last_saved_step"].item()
([[-1.0]], 1)
"""

from __future__ import annotations

import torch

from recis.backends.torch.bridge import as_tensor


class UpdateRecorder:
    """Records the rows of every ``interval``-th update (0: never) of some tables."""

    def __init__(self, interval: int) -> None:
        if interval < 0:
            raise ValueError(f"save_update_info_interval must be >= 0, got {interval}")
        self.interval = int(interval)
        self.info: dict[str, torch.Tensor] = {}
        self._pending: list = []

    def before(self, tables: dict, steps: dict[str, int], divisor: int) -> None:
        """Note the rows about to be updated, when this update is one to record."""
        self._pending = []
        for name, table in tables.items():
            step = steps.get(table.table.name, 0) + 1
            if not self.interval or step % self.interval or not table.table.grads:
                continue
            rows, grads = table.table.grads.summed(divisor)
            kept = rows >= 0
            rows, grads = rows[kept], grads[kept]
            entries = {
                "updated_grad": as_tensor(grads),
                "updated_params_before": as_tensor(table.table.gather(rows)),
                "updated_state_sum": as_tensor(table.table.store.gather(rows, "sum")),
                "last_saved_step": torch.tensor(step),
            }
            self._pending.append((name, table, rows, entries))

    def after(self) -> None:
        """Complete the noted rows with their values after the update."""
        for name, table, rows, entries in self._pending:
            entries["updated_params_after"] = as_tensor(table.table.gather(rows))
            entries["updated_ids"] = table.ids()[_positions(table, rows)]
            self.info.update({f"{name}_{key}": value for key, value in entries.items()})
        self._pending = []


def _positions(table, rows) -> torch.Tensor:
    """Positions in ``table.ids()`` (row order) of ``rows``."""
    _, held = table.ids_map()
    return torch.searchsorted(held, as_tensor(rows).to(held.device))

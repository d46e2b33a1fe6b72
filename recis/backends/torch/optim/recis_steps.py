"""RecIS's step entries of the Adagrad family's ``state_dict()``.

RecIS's ``SparseRowWiseAdagrad`` (prefix ``sparse_row_wise_adagrad_``) keeps one update count per
table: with one table its state holds ``<prefix>step``, with several ``<prefix><table>_step`` each
(int64 ``[1]`` tensors), and the tables themselves under their names. The tensors are live:
loading a state writes into those handed out before. Loading checks what it is given: a table
entry must be the optimizer's own table, and a step a finite non-negative integer; a state
naming one table's step both ways is ambiguous. Every error is a ``RuntimeError`` naming the
entry.

>>> import torch
>>> from recis.nn import HashTable
>>> from recis.optim.sparse_row_wise_adagrad import SparseRowWiseAdagrad
>>> optimizer = SparseRowWiseAdagrad({"steps_doc": HashTable([-1, 2], name="steps_doc")})
>>> optimizer.load_state_dict({"sparse_row_wise_adagrad_step": torch.tensor([4])})
>>> optimizer.state_dict()["sparse_row_wise_adagrad_step"].tolist()
[4]
"""

from __future__ import annotations

import math

import torch

from recis.backends.torch.hashtable_access import as_hashtable


class RecisSteps:
    """Mixed into a :class:`~recis.backends.torch.optim.sparse_optimizer.SparseOptimizer`
    whose ``recis_step_prefix`` names its entries (see the module docstring)."""

    recis_step_prefix: str

    def state_dict(self) -> dict:
        """This optimizer's state with RecIS's step entries and tables."""
        return {**super().state_dict(), **self.hashtables, **self._step_entries()}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore a state of :meth:`state_dict`, or RecIS's entries alone."""
        self._check_tables(state_dict)
        steps = self._steps_of(state_dict)
        ours = {k: v for k, v in state_dict.items() if k in ("rule", "tables", "param_groups")}
        if "rule" in ours:
            super().load_state_dict(ours)
        for group, saved in zip(self.param_groups, ours.get("param_groups", []), strict=False):
            group.update(saved)
        for name, steps_of_table in steps.items():
            self.core.updater.steps[self.hashtables[name].table.name] = steps_of_table
        self._step_entries()

    def reset_state_dict(self) -> None:
        """Set every table's update count to 0 (rows and slots stay)."""
        for table in self.hashtables.values():
            if table.table.name in self.core.updater.steps:
                self.core.updater.steps[table.table.name] = 0
        self._step_entries()

    def _entry_names(self) -> dict[str, str]:
        """Each table's step entry name."""
        if len(self.hashtables) == 1:
            return {name: self.recis_step_prefix + "step" for name in self.hashtables}
        return {name: f"{self.recis_step_prefix}{name}_step" for name in self.hashtables}

    def _step_entries(self) -> dict[str, torch.Tensor]:
        """The live step tensors, refreshed from the tables' update counts."""
        live = self.__dict__.setdefault("_live_steps", {})
        steps = self.core.table_steps
        entries = {}
        for name, entry in self._entry_names().items():
            tensor = live.setdefault(name, torch.zeros(1, dtype=torch.int64))
            tensor.fill_(steps.get(self.hashtables[name].table.name, 0))
            entries[entry] = tensor
        return entries

    def _check_tables(self, state_dict: dict) -> None:
        for name, table in self.hashtables.items():
            given = state_dict.get(name)
            if (
                given is not None
                and not torch.is_tensor(given)
                and as_hashtable(given) is not table
            ):
                raise RuntimeError(f"state entry {name!r} is another table than this one's")

    def _steps_of(self, state_dict: dict) -> dict[str, int]:
        plain = self.recis_step_prefix + "step"
        per_table = {f"{self.recis_step_prefix}{name}_step": name for name in self.hashtables}
        steps = {}
        for entry, name in per_table.items():
            if entry in state_dict:
                if len(self.hashtables) == 1 and plain in state_dict:
                    raise RuntimeError(f"state has both {plain!r} and {entry!r}: ambiguous")
                steps[name] = _whole_step(entry, state_dict[entry])
        if plain in state_dict:
            for name in self.hashtables:
                steps.setdefault(name, _whole_step(plain, state_dict[plain]))
        return steps


def _whole_step(entry: str, value) -> int:
    """A step entry's value as an int: finite, whole and non-negative, else RuntimeError."""
    number = float(torch.as_tensor(value).reshape(-1)[0])
    if not math.isfinite(number) or number < 0 or number != int(number):
        raise RuntimeError(
            f"state entry {entry!r}: a step must be a whole number >= 0, got {value}"
        )
    return int(number)

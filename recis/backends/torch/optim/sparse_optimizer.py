"""``SparseOptimizer``: a ``torch.optim.Optimizer`` that updates hash tables with an engine rule.

It holds one parameter group (``lr``), so torch LR schedulers drive it like any optimizer;
``step()`` applies the rule to the rows that received gradients since the last step. Tables on the
GPU are updated there (one fused kernel per table), on torch's current CUDA stream.

>>> import torch
>>> from recis.nn import HashTable
>>> from recis.optim import SparseSGD
>>> table = HashTable([-1, 2], name="t")
>>> optimizer = SparseSGD({"t": table}, lr=0.5)
>>> table(torch.tensor([4, 4])).sum().backward()
>>> optimizer.step()
>>> table(torch.tensor([4])).tolist()  # both occurrences' gradients, summed
[[-1.0, -1.0]]
"""

from __future__ import annotations

import torch

from recis.backends.torch.bridge import as_tensor, beside_torch
from recis.backends.torch.hashtable import HashTable
from recis.backends.torch.hashtable_access import as_hashtable
from recis.backends.torch.optim.recis_state import recis_entries, recis_steps
from recis.core.optim.rule import Rule
from recis.embedding.sparse_optimizer import SparseOptimizerCore


class SparseOptimizer(torch.optim.Optimizer):
    """Applies ``rule`` to the hash tables in ``param_dict`` ({name: HashTable}) through the
    engine's :class:`~recis.embedding.sparse_optimizer.SparseOptimizerCore`.

    Args:
        param_dict: the tables, e.g. ``filter_out_sparse_param(model)``.
        rule: the engine's row-wise optimizer rule.
        lr: learning rate (``param_groups[0]["lr"]``, so schedulers can change it).
        on_nonfinite: ``"raise"`` (default) or ``"skip"`` rows with NaN/inf gradients.
    """

    recis_prefix: str | None = None
    """Prefix of RecIS's state entries (:mod:`~recis.backends.torch.optim.recis_state`), e.g.
    ``"sparse_adamw_tf_"``; None where RecIS has none."""

    recis_slot_prefix: str | None = None
    """RecIS's prefix of this optimizer's slot names (``table.slot_group()``), e.g.
    ``"sparse_adagrad_"``."""

    def __init__(
        self, param_dict: dict[str, HashTable], rule: Rule, lr: float, on_nonfinite="raise"
    ):
        if lr < 0:
            raise ValueError(f"lr must be >= 0, got {lr}")
        super().__init__([torch.zeros(0, requires_grad=True)], {"lr": lr})
        self.rule = rule
        self.core = SparseOptimizerCore(rule, on_nonfinite=on_nonfinite, shards=self._shards)
        self.hashtables: dict[str, HashTable] = {}
        self.add_params(param_dict)

    def add_params(self, param_dict: dict[str, HashTable]) -> None:
        """Also update these tables (a frozen one, ``requires_optimizer_state()`` False, gets
        no state)."""
        for name, table in param_dict.items():
            table = as_hashtable(table)
            if not isinstance(table, HashTable):
                raise TypeError(
                    f"{name!r}: sparse optimizers update HashTables, got {type(table).__name__}"
                )
            if table.requires_optimizer_state():
                self.core.add_table(table.table)
                table.recis_slot_prefix = self.recis_slot_prefix
            self.hashtables[name] = table

    def set_grad_accum_steps(self, steps: int) -> None:
        """Apply updates every ``steps`` calls of :meth:`step`, with gradients divided by it."""
        self.core.accumulation_steps = steps

    @torch.no_grad()
    @beside_torch
    def step(self, closure=None):
        """Count a micro-step; at each accumulation boundary update the tables' rows.

        With tables sharded over ranks, this is a collective: the gradients recorded for rows
        owned by other ranks are sent to them first.
        """
        loss = closure() if closure is not None else None
        self.core.step(lr=self.param_groups[0]["lr"])
        return loss

    def _shards(self) -> list:
        """This rank's shards of the tables, or [] when they are not sharded."""
        shards = [table.shard for table in self.hashtables.values()]
        return shards if shards and shards[0] is not None else []

    @beside_torch
    def push_gradients(self) -> None:
        """Send the gradients of rows owned by other ranks to them (a collective when the tables
        are sharded; nothing otherwise)."""
        self.core.push_gradients()

    @beside_torch
    def skip_step(self) -> None:
        """Count a micro-step like :meth:`step` but drop the gradients instead of applying them
        (e.g. after an fp16 overflow)."""
        self.core.skip_step()

    @beside_torch
    def local_finite_flags(self) -> list[torch.Tensor]:
        """Per table, a 0-d boolean tensor on the table's device telling whether every gradient
        this rank holds for its rows is finite; nothing waits for a GPU until they are read."""
        return [as_tensor(flag) for flag in self.core.local_finite_flags()]

    @beside_torch
    def grads_finite(self) -> bool:
        """Whether every gradient received since the last update is finite (on every rank, when
        the tables are sharded)."""
        return self.core.grads_finite()

    @beside_torch
    def unscale_grads(self, scale: float) -> None:
        """Divide the gradients received so far by ``scale`` (fp16 loss scaling)."""
        self.core.unscale_grads(scale)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop gradients, except those being accumulated between boundaries."""
        if self.core.at_boundary:
            self.core.zero_grad()

    def state_dict(self) -> dict:
        """Learning rate, and the rule and per-table counters of
        :meth:`SparseOptimizerCore.state_dict` (rows and slots live with the tables); for AdamW
        and AdamWTF also RecIS's entries (:mod:`~recis.backends.torch.optim.recis_state`)."""
        groups = [{k: v for k, v in g.items() if k != "params"} for g in self.param_groups]
        state = {"param_groups": groups, **self.core.state_dict()}
        if self.recis_prefix is not None:
            state |= recis_entries(self.recis_prefix, self.rule, self._logical_steps())
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore :meth:`state_dict`; without ``param_groups`` (a state the JAX front end
        saved) the learning rate stays as configured. A state with only RecIS's entries
        (``<prefix>step``...) sets the tables' update counts from them."""
        if "rule" not in state_dict and self.recis_prefix is not None:
            state_dict = {**state_dict, **self._state_from_recis(state_dict)}
        self.core.load_state_dict(state_dict)
        for group, saved in zip(
            self.param_groups, state_dict.get("param_groups", []), strict=False
        ):
            group.update(saved)

    def _logical_steps(self) -> dict[str, int]:
        steps = self.core.table_steps
        return {name: steps.get(t.table.name, 0) for name, t in self.hashtables.items()}

    def _state_from_recis(self, state_dict: dict) -> dict:
        ours = self.core.state_dict()
        steps = recis_steps(self.recis_prefix, state_dict, self.hashtables)
        physical = {self.hashtables[name].table.name: n for name, n in steps.items()}
        tables = ours["tables"]
        return {**ours, "tables": {**tables, "steps": {**tables["steps"], **physical}}}

    @property
    def table_steps(self) -> dict[str, int]:
        """Updates applied so far, per physical table."""
        return self.core.table_steps

    @property
    def skipped_rows(self) -> dict[str, int]:
        """Rows skipped for NaN/inf gradients, per table (``on_nonfinite="skip"``)."""
        return self.core.skipped_rows

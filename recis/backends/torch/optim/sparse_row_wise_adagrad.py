"""RecIS's ``SparseRowWiseAdagrad`` and ``SparseRowWiseAdagradSum``, with RecIS's signatures.

``SparseRowWiseAdagrad(param_dict, lr=1e-3, lr_decay=0, initial_accumulator_value=0, eps=1e-10,
weight_decay=0, maximize=False)``: row-wise Adagrad (:class:`~recis.core.optim.RowWiseAdagrad`)
with coupled weight decay, the rate ``lr / (1 + (step - 1) * lr_decay)`` and, with
``maximize``, the gradient's sign flipped before the decay is added. Its state holds RecIS's
step entries (:mod:`~recis.backends.torch.optim.recis_steps`); the accumulator is the slot
``sparse_row_wise_adagrad_state_sum`` (``table.slot_group()``).

``SparseRowWiseAdagradSum`` (entries and slot ``sparse_row_wise_adagrad_sum_``…) grows the
accumulator by the mean of the squared gradients the table received (``accept_grad_sq``, see
:mod:`~recis.backends.torch.optim.squared_gradients`) instead of the summed gradient's square;
a table that received gradients without them raises ``RuntimeError``.

>>> import torch
>>> from recis.nn import HashTable
>>> table = HashTable([-1, 2], name="row_wise_doc")
>>> optimizer = SparseRowWiseAdagrad({"row_wise_doc": table}, lr=0.5)
>>> table(torch.tensor([1])).sum().backward()
>>> optimizer.step()
>>> table(torch.tensor([1])).tolist()  # state 1: −0.5·1/√1
[[-0.5, -0.5]]
"""

from __future__ import annotations

import torch

from recis.backends.torch.bridge import beside_torch
from recis.backends.torch.hashtable_access import as_hashtable
from recis.backends.torch.optim.recis_steps import RecisSteps
from recis.backends.torch.optim.sparse_optimizer import SparseOptimizer
from recis.backends.torch.optim.squared_gradients import (
    clear_squared_gradients,
    fold_squared_gradients,
    has_squared_gradients,
)
from recis.core.optim import RowWiseAdagrad
from recis.core.optim.rule import check_real


class SparseRowWiseAdagrad(RecisSteps, SparseOptimizer):
    """Row-wise Adagrad with RecIS's signature (see the module docstring)."""

    recis_slot_prefix = "sparse_row_wise_adagrad_"
    recis_step_prefix = "sparse_row_wise_adagrad_"

    def __init__(
        self,
        param_dict,
        lr: float = 1e-3,
        lr_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
        weight_decay: float = 0.0,
        maximize: bool = False,
        on_nonfinite: str = "raise",
    ) -> None:
        if not param_dict:
            raise ValueError(f"{type(self).__name__}: param_dict holds no table")
        self._lr = check_real("lr", lr, 0.0)
        self._maximize = bool(maximize)
        rule = RowWiseAdagrad(initial_accumulator_value, eps, weight_decay, lr_decay)
        super().__init__(param_dict, rule, self._lr, on_nonfinite)

    def add_params(self, param_dict) -> None:
        """Also update these tables; a name already updated raises ``RuntimeError``."""
        taken = [name for name in param_dict if name in getattr(self, "hashtables", {})]
        if taken:
            raise RuntimeError(f"{type(self).__name__} already updates tables {taken}")
        super().add_params({name: as_hashtable(t) for name, t in param_dict.items()})

    @torch.no_grad()
    @beside_torch
    def step(self, closure=None):
        """Count a micro-step; at each accumulation boundary update the rows (see
        :meth:`SparseOptimizer.step`)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if self._at_update():
            if self._maximize:
                self.core.unscale_grads(-1.0)
            self._before_update()
        self.core.step(lr=self.param_groups[0]["lr"])
        return loss

    def _at_update(self) -> bool:
        updater = self.core.updater
        return (updater.micro_step + 1) % updater.accumulation_steps == 0

    def _before_update(self) -> None:
        """What runs just before the rule at an accumulation boundary."""


class SparseRowWiseAdagradSum(SparseRowWiseAdagrad):
    """Row-wise Adagrad over summed squared gradients (see the module docstring)."""

    recis_slot_prefix = "sparse_row_wise_adagrad_sum_"
    recis_step_prefix = "sparse_row_wise_adagrad_sum_"

    def _before_update(self) -> None:
        divisor = self.core.accumulation_steps
        for name, table in self.hashtables.items():
            if not table.table.grads:
                continue
            if not has_squared_gradients(table):
                raise RuntimeError(
                    f"SparseRowWiseAdagradSum requires grad_sq: table {name!r} received "
                    "gradients without their squares (accept_grad_sq)"
                )
            fold_squared_gradients(table, "sum", divisor, row_wise=True)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop gradients and squared gradients, except those being accumulated."""
        if self.core.at_boundary:
            for table in self.hashtables.values():
                clear_squared_gradients(table)
        super().zero_grad(set_to_none)

"""``SparseAdagradSum``: RecIS's Adagrad that sums the workers' gradients of an id.

RecIS adds ``Σ_w g_w²`` (each worker's gradient squared, then summed) to the accumulator and
steps by ``Σ_w g_w``. A table given these squares (``table._hashtable_impl.accept_grad_sq``,
e.g. from :mod:`~recis.backends.torch.functional.sparse_grad_group_ops`) is updated so
(:mod:`~recis.backends.torch.optim.squared_gradients`); without them, on one process, the
gradient is the one worker's and this is Adagrad without weight decay. With several ranks the
engine adds the ranks' gradients of an id before the optimizer sees them, so ``Σ_w g_w²`` is not
available: the constructor raises rather than train with another rule.

>>> import torch
>>> from recis.backends.torch.hashtable import HashTable
>>> table = HashTable([-1, 2], name="adagrad_sum_doc")
>>> optimizer = SparseAdagradSum({"adagrad_sum_doc": table}, lr=0.5)
>>> table(torch.tensor([4])).sum().backward()
>>> optimizer.step()
>>> table(torch.tensor([4])).tolist()  # 0 − 0.5·1/√1
[[-0.5, -0.5]]
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from recis.backends.torch.optim.sparse_optimizers import SparseAdagrad
from recis.backends.torch.optim.squared_gradients import (
    clear_squared_gradients,
    fold_squared_gradients,
)


class SparseAdagradSum(SparseAdagrad):
    """Adagrad over hash-table rows, RecIS's signature; one process only (module docstring)."""

    def __init__(
        self,
        param_dict,
        lr=1e-3,
        lr_decay: float = 0,
        initial_accumulator_value: float = 0,
        eps=1e-10,
        weight_decay: float = 0,
        save_update_info_interval: int = 0,
    ) -> None:
        if weight_decay != 0:
            raise ValueError("SparseAdagradSum does not support weight_decay")
        if save_update_info_interval:
            raise ValueError("SparseAdagradSum: save_update_info_interval is not supported here")
        ranks = world_size()
        if ranks > 1:
            raise NotImplementedError(
                f"SparseAdagradSum needs each rank's gradient of an id; with {ranks} ranks the "
                "engine sums them first. Use SparseAdagrad."
            )
        super().__init__(
            param_dict,
            lr=lr,
            lr_decay=lr_decay,
            initial_accumulator_value=initial_accumulator_value,
            eps=eps,
        )

    @torch.no_grad()
    def step(self, closure=None):
        """As :meth:`SparseAdagrad.step`, the accumulators first taking the squared gradients
        the tables received."""
        updater = self.core.updater
        if (updater.micro_step + 1) % updater.accumulation_steps == 0:
            for table in self.hashtables.values():
                fold_squared_gradients(table, "sum", updater.accumulation_steps, row_wise=False)
        return super().step(closure)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop gradients and squared gradients, except those being accumulated."""
        if self.core.at_boundary:
            for table in self.hashtables.values():
                clear_squared_gradients(table)
        super().zero_grad(set_to_none)


def world_size() -> int:
    """The torch.distributed world size (1 without a process group)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1

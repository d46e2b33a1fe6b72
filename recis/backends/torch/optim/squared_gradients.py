"""Per-row sums of squared gradients, for RecIS's ``SparseAdagradSum`` family.

With gradients coming from several sources (workers, or groups of them, see
:mod:`~recis.backends.torch.functional.sparse_grad_group_ops`), RecIS's ``*Sum`` Adagrad
optimizers step by the summed gradient ``g = Σ_w g_w`` but grow the accumulator by
``Σ_w g_w²``, which a table receives beside its gradients (``accept_grad_sq``). The engine's
Adagrad rules add ``g²`` themselves, so before they run, :func:`fold_squared_gradients` adds the
difference ``Σ_w g_w² − g²`` (its mean over the row for row-wise Adagrad) to the accumulator:
the rule's update then ends with exactly ``sum + Σ_w g_w²``.

>>> import torch
>>> from recis.backends.torch.hashtable import HashTable
>>> from recis.optim import SparseAdagrad
>>> table = HashTable([-1, 1], name="squares_doc")
>>> _ = SparseAdagrad({"squares_doc": table})
>>> table.insert(torch.tensor([3]), torch.zeros(1, 1))
>>> table.accept_grad(torch.tensor([0]), torch.tensor([[2.0]]))
>>> accept_grad_sq(table, torch.tensor([0]), torch.tensor([[5.0]]))
>>> fold_squared_gradients(table, "sum", divisor=1, row_wise=False)
>>> table.slot_group().slot_by_name("sparse_adagrad_state_sum").value()[0].tolist()  # 5 - 2²
[1.0]
"""

from __future__ import annotations

import numpy as np
import torch

from recis.backends.torch.bridge import as_engine
from recis.core.arrays import array_module
from recis.core.gradients import GradientBuffer


def squared_buffer(table) -> GradientBuffer:
    """The buffer of ``table``'s squared gradients (made on first use)."""
    buffer = getattr(table, "_grad_sq", None)
    if buffer is None:
        buffer = GradientBuffer(table.dim)
        table._grad_sq = buffer
    return buffer


def accept_grad_sq(table, grad_index: torch.Tensor, grad_sq: torch.Tensor) -> None:
    """Add ``grad_sq[i]`` to the squared gradient of row ``grad_index[i]`` of ``table``."""
    rows = as_engine(torch.as_tensor(grad_index).reshape(-1).to(table.device), "grad_index")
    values = torch.as_tensor(grad_sq).to(table.device, torch.float32).reshape(rows.size, -1)
    squared_buffer(table).add(rows.astype(np.int64), as_engine(values, "grad_sq"))


def has_squared_gradients(table) -> bool:
    """Whether ``table`` received squared gradients since they were last folded or cleared."""
    return bool(getattr(table, "_grad_sq", None))


def clear_squared_gradients(table) -> None:
    if has_squared_gradients(table):
        table._grad_sq.clear()


def fold_squared_gradients(table, slot: str, divisor: int, row_wise: bool) -> None:
    """Add ``Σ_w g_w² − g²`` of each row to its accumulator ``slot`` (see the module docstring);
    ``divisor`` is the accumulation count (gradients are divided by it, squares by its square).
    The squared gradients are then cleared."""
    if not has_squared_gradients(table):
        return
    sq_rows, squares = table._grad_sq.summed(divisor * divisor)
    grad_rows, grads = table.table.grads.summed(divisor)
    xp = array_module(squares)
    kept = sq_rows >= 0
    sq_rows, squares = sq_rows[kept], squares[kept]
    correction = squares - _at_rows(xp, grad_rows, grads, sq_rows) ** 2
    if row_wise:
        correction = correction.mean(axis=1)
    store = table.table.store
    store.scatter(sq_rows, store.gather(sq_rows, slot) + correction, slot)
    table._grad_sq.clear()


def _at_rows(xp, rows, values, wanted):
    """``values`` of ``wanted`` rows (zeros where ``rows`` has none)."""
    order = xp.argsort(rows)
    rows, values = rows[order], values[order]
    position = xp.clip(xp.searchsorted(rows, wanted), 0, max(rows.size - 1, 0))
    out = xp.zeros((wanted.size, values.shape[1]), np.float32)
    if rows.size:
        found = rows[position] == wanted
        out[found] = values[position[found]]
    return out

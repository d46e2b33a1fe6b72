"""Rule updates applied in place to a CPU row store: one pass over the rows, no copies.

:func:`update_in_place` is the CPU fast path of :class:`~recis.core.optim.updater.SparseUpdater`:
for SGD, Adagrad, Adam, AdamW and AdamW-TF on float32 rows it runs a kernel of
:mod:`recis.core.kernels.optim` that reads each row and its slots where they are stored, applies
the rule and writes them back. Its reference twin is :func:`update_by_copies` (gather → the rule's
NumPy :meth:`~recis.core.optim.Rule.update` → scatter), which gives the same bits and serves every
other case (other rules or subclasses, float16/bfloat16 rows, GPU stores).

>>> import numpy as np
>>> from recis.core.optim import Adagrad
>>> from recis.core.row_store import RowStore
>>> store = RowStore(dim=2, block_rows=4)
>>> store.add_slot("sum", (2,))
>>> store.ensure_rows(4)
>>> update_in_place(Adagrad(), store, np.array([3]), np.full((1, 2), 2, np.float32), 1, 0.1)
True
>>> store.gather(np.array([3])).tolist(), store.gather(np.array([3]), "sum").tolist()
([[-0.10000000149011612, -0.10000000149011612]], [[4.0, 4.0]])
"""

from __future__ import annotations

import numpy as np
from numba import typeof
from numba.typed import List

from recis.core.cuda.optim import scalars
from recis.core.kernels import optim as kernels
from recis.core.optim.adagrad import Adagrad
from recis.core.optim.adam import Adam, AdamW, AdamWTF
from recis.core.optim.rule import FLOAT32, Rule
from recis.core.optim.sgd import SGD
from recis.core.row_store import EMBEDDING, RowPlan, RowStore

_NO_BLOCKS = List.empty_list(typeof(np.empty((1, 1), np.uint32)))


def update_in_place(rule: Rule, store: RowStore, rows, grads, step: int, lr: float) -> bool:
    """Apply ``rule`` to the distinct ``rows`` of ``store`` with float32 ``grads[n, dim]``, in
    place; False (nothing done) when there is no in-place kernel for this rule and store, or the
    rows lie in several storage tiers (:class:`~recis.core.tiers.TieredRowStore`)."""
    run = _KERNELS.get(type(rule))
    if run is None or store.device != "cpu" or store.fields[EMBEDDING].dtype != FLOAT32:
        return False
    grads = np.ascontiguousarray(grads, np.float32)
    if grads.shape != (np.size(rows), store.dim):
        raise ValueError(f"RowStore {store.name!r}: grads must be [{np.size(rows)}, {store.dim}]")
    if rows.size:
        plan = store.plan(rows, distinct=True)
        if not isinstance(plan, RowPlan):  # rows spread over storage tiers: no one set of blocks
            return False
        run(rule, store, (plan.rows, plan.order, plan.bounds), grads, step, lr)
    return True


def update_by_copies(rule: Rule, store: RowStore, rows, grads, step: int, lr: float) -> None:
    """The reference twin of :func:`update_in_place`, for any rule and store: gather the rows and
    slots, run ``rule.update``, scatter the results."""
    plan = store.plan(rows, distinct=True)
    params = store.gather(plan, dtype=np.float32)
    slots = {name: store.gather(plan, name) for name in rule.slots(store.dim)}
    params, slots = rule.update(params, grads, slots, step, lr)
    store.scatter(plan, params)
    for name, values in slots.items():
        store.scatter(plan, values, name)


def _sgd(rule: SGD, store, plan, grads, step, lr):
    f32 = np.float32
    kernels.sgd_rows(store.blocks(), *plan, grads, f32(rule.weight_decay), f32(lr))


def _adagrad(rule: Adagrad, store, plan, grads, step, lr):
    f32 = np.float32
    clr = lr / (1 + (step - 1) * rule.lr_decay)
    args = (*plan, grads, f32(rule.weight_decay), f32(clr), f32(rule.eps))
    kernels.adagrad_rows(store.blocks(), store.blocks("sum"), *args)


def _adam(rule: Adam | AdamW | AdamWTF, store, plan, grads, step, lr):
    f32 = np.float32
    s = scalars(rule, step, lr)  # the float32 scalars the GPU kernels take too
    if isinstance(rule, AdamWTF):
        mode, decay, step_size = kernels.ADAMW_TF, s["decay_factor"], s["alpha"]
    elif isinstance(rule, AdamW):
        mode, decay, step_size = kernels.ADAMW, f32(1 - lr * rule.weight_decay), s["step_size"]
    else:
        mode, decay, step_size = kernels.ADAM, f32(1), s["step_size"]
    peak = store.blocks("max_exp_avg_sq") if getattr(rule, "amsgrad", False) else _NO_BLOCKS
    moments = (store.blocks("exp_avg"), store.blocks("exp_avg_sq"), peak)
    factors = (s["one_minus_beta1"], s["beta2"], s["one_minus_beta2"], step_size)
    factors += (s.get("bias_correction2_sqrt", f32(1)), s["eps"])  # AdamW-TF needs none
    l2 = f32(rule.weight_decay if mode == kernels.ADAM else 0)
    kernels.adam_rows(store.blocks(), *moments, *plan, grads, mode, l2, decay, *factors)


_KERNELS = {SGD: _sgd, Adagrad: _adagrad, Adam: _adam, AdamW: _adam, AdamWTF: _adam}

"""Fused GPU updates of the sparse optimizer rules (``cuda/optim.cu``), on CuPy arrays.

:func:`fused_update` is what :meth:`recis.core.optim.Rule.update` runs for CuPy arrays: one kernel
per rule reads the gathered rows, their gradients and slots and writes new rows and slots, with the
CPU rule's float32 operations in the same order. Scalars the CPU rule computes in double from the
hyper-parameters, ``step`` and ``lr`` are computed here by the same expressions and rounded to
float32 once, as NumPy rounds a Python float combined with a float32 array; the results equal the
CPU's bit for bit (FTRL with a ``learning_rate_power`` other than -0.5 within an ulp of each power).

>>> from recis.core.optim import Adam
>>> float(scalars(Adam(), step=1, lr=0.1)["step_size"])  # lr / (1 - beta1**step)
1.0
"""

from __future__ import annotations

import math

import numpy as np

from recis.core.cuda import loader
from recis.core.optim import SGD, Adagrad, Adam, AdamW, AdamWTF, Ftrl, RowWiseAdagrad

SOURCE = "optim.cu"
NULL = np.uint64(0)  # a null pointer argument


def fused_update(rule, params, grads, slots: dict, step: int, lr: float):
    """``(new_params, new_slots)`` of ``rule`` on CuPy arrays, or None for a rule type with no
    fused kernel (a subclass, a user rule). Arguments are validated by ``Rule.update``."""
    update = _UPDATES.get(type(rule))
    if update is None:
        return None
    cupy = loader.require_cupy("sparse optimizer updates on the GPU")
    arrays = {"params": params, "grads": grads, **{f"slots[{k!r}]": v for k, v in slots.items()}}
    for name, array in arrays.items():
        if not isinstance(array, cupy.ndarray):
            raise TypeError(
                f"{name}: expected a CuPy array like params, got {type(array).__name__}"
            )
    params, grads = cupy.ascontiguousarray(params), cupy.ascontiguousarray(grads)
    slots = {name: cupy.ascontiguousarray(value) for name, value in slots.items()}
    return update(cupy, rule, params, grads, slots, step, lr)


def scalars(rule, step: int, lr: float) -> dict[str, np.float32]:
    """The float32 scalars of one update of an Adam-family rule (see the CPU rules' formulas)."""
    common = {
        "one_minus_beta1": np.float32(1 - rule.beta1),
        "beta2": np.float32(rule.beta2),
        "one_minus_beta2": np.float32(1 - rule.beta2),
        "eps": np.float32(rule.eps),
    }
    if isinstance(rule, AdamWTF):
        alpha = lr * math.sqrt(1 - rule.beta2**step) / (1 - rule.beta1**step)
        decay_factor = np.float32(1 - rule.weight_decay)
        return common | {"decay_factor": decay_factor, "alpha": np.float32(alpha)}
    return common | {
        "step_size": np.float32(lr / (1 - rule.beta1**step)),
        "bias_correction2_sqrt": np.float32(math.sqrt(1 - rule.beta2**step)),
    }


def _sgd(cupy, rule, params, grads, slots, step, lr):
    new_params = cupy.empty_like(params)
    args = (params, grads, *_decay(rule.weight_decay), np.float32(lr), new_params)
    _run("sgd_update", params.size, args)
    return new_params, {}


def _adagrad(cupy, rule, params, grads, slots, step, lr):
    new_params, new_sum = cupy.empty_like(params), cupy.empty_like(slots["sum"])
    clr = lr / (1 + (step - 1) * rule.lr_decay)
    args = (params, grads, slots["sum"], *_decay(rule.weight_decay), np.float32(clr))
    _run("adagrad_update", params.size, (*args, np.float32(rule.eps), new_params, new_sum))
    return new_params, {"sum": new_sum}


def _rowwise_adagrad(cupy, rule, params, grads, slots, step, lr):
    new_params, new_sum = cupy.empty_like(params), cupy.empty_like(slots["sum"])
    args = (params, grads, slots["sum"], np.int64(params.shape[1]), *_decay(rule.weight_decay))
    clr = lr / (1 + (step - 1) * rule.lr_decay)
    args += (np.float32(clr), np.float32(rule.eps), new_params, new_sum)
    _run("rowwise_adagrad_update", params.shape[0], args)
    return new_params, {"sum": new_sum}


def _adam(cupy, rule, params, grads, slots, step, lr):
    """Adam (coupled decay) and AdamW (decoupled: rows scaled by 1 - lr * weight_decay first)."""
    new_slots = {name: cupy.empty_like(value) for name, value in slots.items()}
    new_params = cupy.empty_like(params)
    moments = (slots["exp_avg"], slots["exp_avg_sq"], slots.get("max_exp_avg_sq", NULL))
    outputs = (new_params, new_slots["exp_avg"], new_slots["exp_avg_sq"])
    outputs += (new_slots.get("max_exp_avg_sq", NULL),)
    args = (params, grads, *moments, *_adam_arguments(rule, step, lr), *outputs)
    _run("adam_update", params.size, args)
    return new_params, new_slots


def _adamw_tf(cupy, rule, params, grads, slots, step, lr):
    new_slots = {name: cupy.empty_like(value) for name, value in slots.items()}
    s = scalars(rule, step, lr)
    factors = (s["decay_factor"], s["one_minus_beta1"], s["beta2"], s["one_minus_beta2"])
    factors += (s["alpha"], s["eps"])
    new_params = cupy.empty_like(params)
    moments = (slots["exp_avg"], slots["exp_avg_sq"])
    outputs = (new_params, new_slots["exp_avg"], new_slots["exp_avg_sq"])
    _run("adamw_tf_update", params.size, (params, grads, *moments, *factors, *outputs))
    return new_params, new_slots


def _ftrl(cupy, rule, params, grads, slots, step, lr):
    rule.check_lr(lr)
    new_slots = {name: cupy.empty_like(value) for name, value in slots.items()}
    power = -rule.learning_rate_power
    exponent = (np.int32(power == 0.5), np.float64(np.float32(power)))
    factors = (np.float32(lr), np.float32(rule.l1), np.float32(2 * rule.l2 + rule.beta / lr))
    new_params = cupy.empty_like(params)
    state = (slots["accumulator"], slots["linear"])
    outputs = (new_params, new_slots["accumulator"], new_slots["linear"])
    _run("ftrl_update", params.size, (params, grads, *state, *exponent, *factors, *outputs))
    return new_params, new_slots


def _decay(weight_decay: float) -> tuple:
    """(has_decay, weight_decay) kernel arguments of coupled L2 decay."""
    return np.int32(bool(weight_decay)), np.float32(weight_decay)


def _run(name: str, total: int, args: tuple) -> None:
    """Launch kernel ``name`` over ``total`` items (passed as its last argument)."""
    if total:
        loader.launch(loader.kernel(SOURCE, name), total, (*args, np.int64(total)))


_UPDATES = {
    SGD: _sgd,
    Adagrad: _adagrad,
    RowWiseAdagrad: _rowwise_adagrad,
    Adam: _adam,
    AdamW: _adam,
    AdamWTF: _adamw_tf,
    Ftrl: _ftrl,
}


class NonfiniteCounts:
    """Device counters of one table's in-place updates (:func:`update_in_blocks`): the
    non-finite rows of the last two updates (``counters``, used in turn, see ``cuda/optim.cu``)
    and the rows skipped so far (``skipped``)."""

    def __init__(self) -> None:
        cupy = loader.require_cupy("sparse optimizer updates on the GPU")
        self.counters = cupy.zeros(2, np.int64)
        self.parity = 0
        self.skipped = cupy.zeros(1, np.int64)


def updates_in_blocks(rule, store) -> bool:
    """Whether :func:`update_in_blocks` can run ``rule`` on ``store``: a rule type with a fused
    kernel, and float32 rows and slots."""
    if type(rule) not in _BLOCK_UPDATES:
        return False
    fields = store.fields
    names = ["embedding", *rule.slots(store.dim)]
    return all(fields[name].dtype == np.float32 for name in names)


def update_in_blocks(rule, store, rows, grads, divisor: int, step: int, lr: float, counts, host):
    """Apply ``rule`` to ``rows`` of ``store`` in place, in one pass over the row store's blocks
    (two with ``host``): ``grads[u]`` is the summed gradient of ``rows[u]`` (-1: none), divided by
    ``divisor`` in the pass; ``counts`` is the table's :class:`NonfiniteCounts`. With ``host``
    (the device address of a :class:`~recis.core.cuda.host_mirror.DeferredErrors` report) a
    non-finite gradient leaves every row as it was and its count is reported there; without,
    such rows are skipped and counted in ``counts.skipped``. Nothing waits for the device. A
    store whose blocks are indexed by location (storage tiers: ``store.locate``) gets the rows'
    locations.

    The caller checks :func:`updates_in_blocks` first. ``rule.update`` over gathered rows gives
    the same values (``tests/gpu/test_optim_gpu.py``).
    """
    kernel, slot_names, scalars_, per_row = _BLOCK_UPDATES[type(rule)](rule, step, lr)
    rows = rows.reshape(-1)
    if hasattr(store, "locate"):  # blocks indexed by location (storage tiers), not by row
        rows = store.locate(rows)
    n, dim = rows.size, store.dim
    if per_row and divisor != 1:  # row-wise Adagrad reads the gradients twice: divide first
        grads, divisor = grads / np.float32(divisor), 1
    parity = np.int64(counts.parity)
    if host is not None:
        args = (rows, np.int64(n), grads, np.int64(dim), counts.counters, parity)
        loader.launch(loader.kernel(SOURCE, "count_nonfinite_rows"), n, args)
    args = (rows, np.int64(n), grads, np.int64(dim), np.int32(divisor != 1), np.float32(divisor))
    args += (counts.counters, parity, np.int32(host is not None), counts.skipped)
    args += (NULL if host is None else host, *_fields(store, ["embedding", *slot_names]))
    total = n if per_row else n * dim
    launch = loader.kernel(SOURCE, kernel)
    loader.launch(launch, max(total, 1), (*args, *scalars_, np.int64(total)))
    counts.parity ^= 1


def _fields(store, names: list) -> tuple:
    """Block arguments of the named fields of ``store``; a name of None gives null blocks."""
    from recis.core.cuda.row_store import block_arguments

    out: tuple = ()
    for name in names:
        out += (
            (NULL, np.int64(0), np.int64(0))
            if name is None
            else block_arguments(store.blocks(name))
        )
    return out


def _sgd_blocks(rule, step, lr):
    return "sgd_update_blocks", [], (*_decay(rule.weight_decay), np.float32(lr)), False


def _adagrad_blocks(rule, step, lr):
    clr = lr / (1 + (step - 1) * rule.lr_decay)
    scalars_ = (*_decay(rule.weight_decay), np.float32(clr), np.float32(rule.eps))
    return "adagrad_update_blocks", ["sum"], scalars_, False


def _rowwise_adagrad_blocks(rule, step, lr):
    clr = lr / (1 + (step - 1) * rule.lr_decay)
    scalars_ = (*_decay(rule.weight_decay), np.float32(clr), np.float32(rule.eps))
    return "rowwise_adagrad_update_blocks", ["sum"], scalars_, True


def _adam_blocks(rule, step, lr):
    slot_names = ["exp_avg", "exp_avg_sq", "max_exp_avg_sq" if rule.amsgrad else None]
    return "adam_update_blocks", slot_names, _adam_arguments(rule, step, lr), False


def _adam_arguments(rule, step, lr) -> tuple:
    """The scalar arguments of the Adam kernels: the decay (coupled for Adam, decoupled for
    AdamW), then the step's factors."""
    if isinstance(rule, AdamW):
        decay = (np.int32(0), np.float32(0), np.int32(1), np.float32(1 - lr * rule.weight_decay))
    else:
        decay = (*_decay(rule.weight_decay), np.int32(0), np.float32(1))
    s = scalars(rule, step, lr)
    factors = (s["one_minus_beta1"], s["beta2"], s["one_minus_beta2"], s["step_size"])
    return (*decay, *factors, s["bias_correction2_sqrt"], s["eps"])


def _adamw_tf_blocks(rule, step, lr):
    s = scalars(rule, step, lr)
    factors = (s["decay_factor"], s["one_minus_beta1"], s["beta2"], s["one_minus_beta2"])
    factors += (s["alpha"], s["eps"])
    return "adamw_tf_update_blocks", ["exp_avg", "exp_avg_sq"], factors, False


def _ftrl_blocks(rule, step, lr):
    rule.check_lr(lr)
    power = -rule.learning_rate_power
    exponent = (np.int32(power == 0.5), np.float64(np.float32(power)))
    factors = (np.float32(lr), np.float32(rule.l1), np.float32(2 * rule.l2 + rule.beta / lr))
    return "ftrl_update_blocks", ["accumulator", "linear"], (*exponent, *factors), False


_BLOCK_UPDATES = {
    SGD: _sgd_blocks,
    Adagrad: _adagrad_blocks,
    RowWiseAdagrad: _rowwise_adagrad_blocks,
    Adam: _adam_blocks,
    AdamW: _adam_blocks,
    AdamWTF: _adamw_tf_blocks,
    Ftrl: _ftrl_blocks,
}

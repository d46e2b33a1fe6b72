"""RecIS's dense Adam ops in TensorFlow's form (``epsilon`` outside the bias correction).

For step ``t``: ``m ← β1·m + (1−β1)·g``, ``v ← β2·v + (1−β2)·g²`` and
``p ← p − lr·√(1−β2^t)/(1−β1^t) · m / (√v + ε)``. ``fused_adamw_tf_apply`` first adds 1 to each
tensor's step and scales its parameter by ``1 − weight_decay``. Both update their tensors in
place, as RecIS's kernels do.

>>> import torch
>>> p, g, m, v = torch.tensor([1.0]), torch.tensor([0.5]), torch.zeros(1), torch.zeros(1)
>>> torch.ops.recis.adam_tf_apply(p, g, m, v, 1.0, 0.1, 0.9, 0.999, 0.0)
>>> round(p.item(), 6), round(m.item(), 6)
(0.9, 0.05)
"""

from __future__ import annotations

import math

import torch

from recis.backends.torch.ops.registry import recis_op


def _nothing(*_):
    return None


@recis_op(
    "adam_tf_apply(Tensor(a!) _0, Tensor _1, Tensor(b!) _2, Tensor(c!) _3, float _4, float _5, "
    "float _6, float _7, float _8) -> ()",
    _nothing,
)
def adam_tf_apply(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps):
    """One Adam step of ``param`` at step ``step`` (see the module docstring)."""
    _adam_tf_step(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps)


@recis_op(
    "fused_adamw_tf_apply(Tensor(a!)[] _0, Tensor[] _1, Tensor(b!)[] _2, Tensor(c!)[] _3, "
    "Tensor(d!)[] _4, float _5, float _6, float _7, float _8, float _9) -> ()",
    _nothing,
)
def fused_adamw_tf_apply(params, grads, avg, avg_sq, steps, weight_decay, lr, beta1, beta2, eps):
    """AdamW (decoupled decay ``p ← p·(1 − weight_decay)``) over many tensors; each entry of
    ``steps`` (a scalar tensor) is advanced by one first."""
    if not len(params) == len(grads) == len(avg) == len(avg_sq) == len(steps):
        raise ValueError("recis.fused_adamw_tf_apply: the tensor lists differ in length")
    for param, grad, m, v, step in zip(params, grads, avg, avg_sq, steps, strict=True):
        step.add_(1)
        param.mul_(1.0 - weight_decay)
        _adam_tf_step(param, grad, m, v, float(step), lr, beta1, beta2, eps)


def _adam_tf_step(param, grad, m, v, step, lr, beta1, beta2, eps) -> None:
    for name, x in (("grad", grad), ("exp_avg", m), ("exp_avg_sq", v)):
        if x.shape != param.shape:
            raise ValueError(
                f"recis.adam_tf_apply: {name} {tuple(x.shape)} != {tuple(param.shape)}"
            )
    alpha = lr * math.sqrt(1.0 - beta2**step) / (1.0 - beta1**step)
    with torch.no_grad():
        m.mul_(beta1).add_(grad, alpha=1.0 - beta1)
        v.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
        param.sub_(alpha * m / (v.sqrt() + eps))

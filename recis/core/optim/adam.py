"""Adam, AdamW (as in torch) and RecIS's AdamW-TF, built from shared moment helpers."""

from __future__ import annotations

import math
from dataclasses import dataclass

from recis.core.optim.rule import (
    FLOAT32,
    Rule,
    SlotSpec,
    check_bool,
    check_real,
    set_fields,
    with_l2,
)


def check_betas(rule: Rule) -> None:
    """Validate and store ``beta1``, ``beta2`` (in ``[0, 1)``) and ``eps`` (>= 0) of ``rule``."""
    set_fields(
        rule,
        beta1=check_real("beta1", rule.beta1, 0.0, 1.0, high_open=True),
        beta2=check_real("beta2", rule.beta2, 0.0, 1.0, high_open=True),
        eps=check_real("eps", rule.eps, 0.0),
    )


def moment_slots(dim: int, amsgrad: bool = False) -> dict[str, SlotSpec]:
    """First and second moments (and their running maximum with amsgrad), zero-initialised."""
    names = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq") if amsgrad else ("exp_avg", "exp_avg_sq")
    return {name: SlotSpec((dim,), FLOAT32, 0.0) for name in names}


def update_moments(rule: Rule, grads, slots) -> dict:
    """Return the moments advanced by ``grads`` (exponential averages of g and g²)."""
    exp_avg = slots["exp_avg"] + (1 - rule.beta1) * (grads - slots["exp_avg"])
    exp_avg_sq = rule.beta2 * slots["exp_avg_sq"] + (1 - rule.beta2) * (grads * grads)
    return {"exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}


def torch_adam_step(rule: Rule, xp, params, grads, slots, step: int, lr: float):
    """One ``torch.optim.Adam`` step on decayed ``grads``: eps added after bias correction."""
    moments = update_moments(rule, grads, slots)
    second = moments["exp_avg_sq"]
    if rule.amsgrad:
        second = moments["max_exp_avg_sq"] = xp.maximum(slots["max_exp_avg_sq"], second)
    step_size = lr / (1 - rule.beta1**step)
    denom = xp.sqrt(second) / math.sqrt(1 - rule.beta2**step) + rule.eps
    return params - step_size * (moments["exp_avg"] / denom), moments


@dataclass(frozen=True)
class Adam(Rule):
    """Adam exactly as ``torch.optim.Adam``, with coupled L2 weight decay (``g += wd * w``).

    Slots ``"exp_avg"``, ``"exp_avg_sq"`` and, with ``amsgrad``, ``"max_exp_avg_sq"``.

    >>> import numpy as np
    >>> rule = Adam()
    >>> w, s = rule.update(np.zeros((1, 2), np.float32), np.array([[1, -1]], np.float32),
    ...                    rule.init(1, 2), 1, 0.1)
    >>> print(w.round(6))
    [[-0.1  0.1]]
    """

    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0
    amsgrad: bool = False

    def __post_init__(self) -> None:
        check_betas(self)
        set_fields(
            self,
            weight_decay=check_real("weight_decay", self.weight_decay, 0.0),
            amsgrad=check_bool("amsgrad", self.amsgrad),
        )

    def slots(self, dim: int) -> dict[str, SlotSpec]:
        return moment_slots(dim, self.amsgrad)

    def _update(self, xp, params, grads, slots, step, lr):
        grads = with_l2(grads, params, self.weight_decay)
        return torch_adam_step(self, xp, params, grads, slots, step, lr)


@dataclass(frozen=True)
class AdamW(Rule):
    """AdamW exactly as ``torch.optim.AdamW``: ``w *= 1 - lr * weight_decay``, then Adam.

    Slots as :class:`Adam`.

    >>> import numpy as np
    >>> rule = AdamW(weight_decay=0.5)
    >>> w, s = rule.update(np.ones((1, 1), np.float32), np.zeros((1, 1), np.float32),
    ...                    rule.init(1, 1), 1, 0.1)
    >>> w.tolist()
    [[0.949999988079071]]
    """

    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 1e-2
    amsgrad: bool = False

    def __post_init__(self) -> None:
        check_betas(self)
        set_fields(
            self,
            weight_decay=check_real("weight_decay", self.weight_decay, 0.0),
            amsgrad=check_bool("amsgrad", self.amsgrad),
        )

    def slots(self, dim: int) -> dict[str, SlotSpec]:
        return moment_slots(dim, self.amsgrad)

    def _update(self, xp, params, grads, slots, step, lr):
        params = params * (1 - lr * self.weight_decay)
        return torch_adam_step(self, xp, params, grads, slots, step, lr)


@dataclass(frozen=True)
class AdamWTF(Rule):
    """RecIS's AdamW-TF: decay not scaled by lr, TensorFlow-style epsilon.

    ``w *= 1 - weight_decay``; moments advance as in Adam; then
    ``w -= lr * sqrt(1 - beta2**step) / (1 - beta1**step) * m / (sqrt(v) + eps)``.
    Slots ``"exp_avg"`` and ``"exp_avg_sq"``.

    >>> import numpy as np
    >>> rule = AdamWTF(weight_decay=0.0)
    >>> w, s = rule.update(np.zeros((1, 2), np.float32), np.array([[1, -1]], np.float32),
    ...                    rule.init(1, 2), 1, 0.1)
    >>> print(w.round(6))
    [[-0.1  0.1]]
    """

    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 1e-2

    def __post_init__(self) -> None:
        check_betas(self)
        wd = check_real("weight_decay", self.weight_decay, 0.0, 1.0, high_open=True)
        set_fields(self, weight_decay=wd)

    def slots(self, dim: int) -> dict[str, SlotSpec]:
        return moment_slots(dim)

    def _update(self, xp, params, grads, slots, step, lr):
        params = params * (1 - self.weight_decay)
        moments = update_moments(self, grads, slots)
        alpha = lr * math.sqrt(1 - self.beta2**step) / (1 - self.beta1**step)
        direction = moments["exp_avg"] / (xp.sqrt(moments["exp_avg_sq"]) + self.eps)
        return params - alpha * direction, moments

"""Stochastic gradient descent with coupled L2 weight decay (as ``torch.optim.SGD``)."""

from __future__ import annotations

from dataclasses import dataclass

from recis.core.optim.rule import Rule, SlotSpec, check_real, set_fields, with_l2


@dataclass(frozen=True)
class SGD(Rule):
    """``w -= lr * (g + weight_decay * w)``; no slots.

    >>> import numpy as np
    >>> w, _ = SGD().update(np.ones((1, 2), np.float32), np.ones((1, 2), np.float32), {}, 1, 0.5)
    >>> w.tolist()
    [[0.5, 0.5]]
    """

    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        set_fields(self, weight_decay=check_real("weight_decay", self.weight_decay, 0.0))

    def slots(self, dim: int) -> dict[str, SlotSpec]:
        return {}

    def _update(self, xp, params, grads, slots, step, lr):
        grads = with_l2(grads, params, self.weight_decay)
        return params - lr * grads, {}

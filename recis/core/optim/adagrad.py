"""Adagrad with one accumulator per element, and row-wise Adagrad with one per row."""

from __future__ import annotations

from dataclasses import dataclass

from recis.core.optim.rule import FLOAT32, Rule, SlotSpec, check_real, set_fields, with_l2


@dataclass(frozen=True)
class Adagrad(Rule):
    """Adagrad as ``torch.optim.Adagrad``, with coupled L2 weight decay.

    ``g += weight_decay * w; sum += g²; w -= clr * g / (sqrt(sum) + eps)`` where
    ``clr = lr / (1 + (step - 1) * lr_decay)``. Slot ``"sum"`` of shape ``(dim,)``.

    >>> import numpy as np
    >>> rule = Adagrad()
    >>> w, s = rule.update(np.zeros((1, 1), np.float32), np.full((1, 1), 2, np.float32),
    ...                    rule.init(1, 1), 1, 0.1)
    >>> w.tolist(), s["sum"].tolist()
    ([[-0.10000000149011612]], [[4.0]])
    """

    initial_accumulator_value: float = 0.0
    eps: float = 1e-10
    weight_decay: float = 0.0
    lr_decay: float = 0.0

    def __post_init__(self) -> None:
        set_fields(
            self,
            initial_accumulator_value=check_real(
                "initial_accumulator_value", self.initial_accumulator_value, 0.0
            ),
            eps=check_real("eps", self.eps, 0.0),
            weight_decay=check_real("weight_decay", self.weight_decay, 0.0),
            lr_decay=check_real("lr_decay", self.lr_decay, 0.0),
        )

    def slots(self, dim: int) -> dict[str, SlotSpec]:
        return {"sum": SlotSpec((dim,), FLOAT32, self.initial_accumulator_value)}

    def _update(self, xp, params, grads, slots, step, lr):
        grads = with_l2(grads, params, self.weight_decay)
        total = slots["sum"] + grads * grads
        clr = lr / (1 + (step - 1) * self.lr_decay)
        return params - clr * (grads / (xp.sqrt(total) + self.eps)), {"sum": total}


@dataclass(frozen=True)
class RowWiseAdagrad(Rule):
    """Adagrad sharing one accumulator per row, with coupled L2 weight decay.

    ``g += weight_decay * w; sum += mean(g²) over the row; w -= clr * g / (sqrt(sum) + eps)``
    where ``clr = lr / (1 + (step - 1) * lr_decay)``. Slot ``"sum"`` of shape ``()``: one float
    per row.

    >>> import numpy as np
    >>> rule = RowWiseAdagrad()
    >>> w, s = rule.update(np.zeros((1, 2), np.float32), np.array([[3, 1]], np.float32),
    ...                    rule.init(1, 2), 1, 1.0)
    >>> print(w, s["sum"])
    [[-1.3416407 -0.4472136]] [5.]
    """

    initial_accumulator_value: float = 0.0
    eps: float = 1e-10
    weight_decay: float = 0.0
    lr_decay: float = 0.0

    def __post_init__(self) -> None:
        set_fields(
            self,
            initial_accumulator_value=check_real(
                "initial_accumulator_value", self.initial_accumulator_value, 0.0
            ),
            eps=check_real("eps", self.eps, 0.0),
            weight_decay=check_real("weight_decay", self.weight_decay, 0.0),
            lr_decay=check_real("lr_decay", self.lr_decay, 0.0),
        )

    def slots(self, dim: int) -> dict[str, SlotSpec]:
        return {"sum": SlotSpec((), FLOAT32, self.initial_accumulator_value)}

    def _update(self, xp, params, grads, slots, step, lr):
        grads = with_l2(grads, params, self.weight_decay)
        total = slots["sum"] + xp.mean(grads * grads, axis=1)
        clr = lr / (1 + (step - 1) * self.lr_decay)
        scale = clr / (xp.sqrt(total) + self.eps)
        return params - scale[:, None] * grads, {"sum": total}

"""FTRL-proximal as in TensorFlow (with Keras's ``beta``)."""

from __future__ import annotations

from dataclasses import dataclass

from recis.core.optim.rule import FLOAT32, Rule, SlotSpec, check_real, set_fields


@dataclass(frozen=True)
class Ftrl(Rule):
    """Follow-the-regularized-leader with L1/L2 regularisation; ``p = learning_rate_power``.

    ``acc' = acc + g²``; ``linear += g - (acc'^-p - acc^-p) / lr * w``;
    ``quadratic = acc'^-p / lr + 2 * l2 + beta / lr``;
    ``w = (l1 * sign(linear) - linear) / quadratic`` if ``|linear| > l1`` else ``0``.
    Slots ``"accumulator"`` (initially ``initial_accumulator_value``) and ``"linear"`` (0),
    both of shape ``(dim,)``. Needs ``lr > 0``.

    >>> import numpy as np
    >>> rule = Ftrl(initial_accumulator_value=0.0)
    >>> w, s = rule.update(np.zeros((1, 2), np.float32), np.array([[2, -1]], np.float32),
    ...                    rule.init(1, 2), 1, 1.0)
    >>> w.tolist(), s["linear"].tolist()
    ([[-1.0, 1.0]], [[2.0, -1.0]])
    """

    learning_rate_power: float = -0.5
    initial_accumulator_value: float = 0.1
    l1: float = 0.0
    l2: float = 0.0
    beta: float = 0.0

    def __post_init__(self) -> None:
        set_fields(
            self,
            learning_rate_power=check_real(
                "learning_rate_power", self.learning_rate_power, -float("inf"), 0.0
            ),
            initial_accumulator_value=check_real(
                "initial_accumulator_value", self.initial_accumulator_value, 0.0
            ),
            l1=check_real("l1", self.l1, 0.0),
            l2=check_real("l2", self.l2, 0.0),
            beta=check_real("beta", self.beta, 0.0),
        )

    def slots(self, dim: int) -> dict[str, SlotSpec]:
        return {
            "accumulator": SlotSpec((dim,), FLOAT32, self.initial_accumulator_value),
            "linear": SlotSpec((dim,), FLOAT32, 0.0),
        }

    def check_lr(self, lr: float) -> None:
        """Raise ``ValueError`` for ``lr == 0``: the update divides by it."""
        if lr == 0:
            raise ValueError("lr: Ftrl needs lr > 0, got 0.0")

    def _update(self, xp, params, grads, slots, step, lr):
        self.check_lr(lr)
        power = -self.learning_rate_power
        accumulator = slots["accumulator"] + grads * grads
        new_root, old_root = accumulator**power, slots["accumulator"] ** power
        linear = slots["linear"] + grads - (new_root - old_root) / lr * params
        quadratic = new_root / lr + (2 * self.l2 + self.beta / lr)
        return self._solve(xp, linear, quadratic), {"accumulator": accumulator, "linear": linear}

    def _solve(self, xp, linear, quadratic):
        """The proximal step: ``argmin_w linear·w + quadratic/2·w² + l1·|w|``."""
        active = xp.abs(linear) > self.l1
        safe_quadratic = xp.where(active, quadratic, 1)
        weights = (self.l1 * xp.sign(linear) - linear) / safe_quadratic
        return xp.where(active, weights, 0)

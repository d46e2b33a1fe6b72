"""``DynamicLossScale``: the loss-scale schedule of fp16 training, shared by the front ends.

The loss is multiplied by ``scale`` before the backward pass so that small fp16 gradients do not
underflow; gradients are divided by it before the update. A step whose gradients hold NaN or
infinity is skipped and the scale shrinks by ``backoff_factor``; after ``growth_interval``
finite steps in a row it grows by ``growth_factor``.

>>> schedule = DynamicLossScale(scale=8.0, growth_interval=2)
>>> schedule.update(finite=False), schedule.scale
(False, 4.0)
>>> schedule.update(True), schedule.update(True), schedule.scale
(True, True, 8.0)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class DynamicLossScale:
    """Loss scale with backoff on overflow and periodic growth (see the module docstring)."""

    scale: float = 2.0**16
    growth_factor: float = 2.0
    backoff_factor: float = 0.5
    growth_interval: int = 2000
    good_steps: int = 0

    def __post_init__(self) -> None:
        if self.scale <= 0 or self.growth_factor < 1 or not 0 < self.backoff_factor < 1:
            raise ValueError(
                "DynamicLossScale needs scale > 0, growth_factor >= 1 and 0 < backoff_factor < 1"
            )

    def update(self, finite: bool) -> bool:
        """Record whether this step's gradients were finite; return whether to apply them."""
        if not finite:
            self.scale *= self.backoff_factor
            self.good_steps = 0
            return False
        self.good_steps += 1
        if self.good_steps >= self.growth_interval:
            self.scale *= self.growth_factor
            self.good_steps = 0
        return True

    def state_dict(self) -> dict:
        return {"scale": self.scale, "good_steps": self.good_steps}

    def load_state_dict(self, state: dict) -> None:
        self.scale = float(state["scale"])
        self.good_steps = int(state["good_steps"])

"""Dynamic loss scaling for fp16 training: one policy, shared by the front ends.

The loss is multiplied by ``scale`` before the backward pass so that small fp16 gradients do not
underflow; gradients are divided by it before the update. A step whose gradients hold NaN or
infinity is skipped and the scale shrinks by ``backoff_factor`` (never below ``min_scale``);
after ``growth_interval`` finite steps in a row it grows by ``growth_factor``.
:class:`LossScalePolicy` holds these settings and the rule; :class:`DynamicLossScale` is the
host-side state the torch trainer keeps, and the JAX front end keeps the same state as a pytree
(:class:`recis.backends.jax.precision.DynamicLossScale`) updated by the same policy.

>>> schedule = DynamicLossScale(LossScalePolicy(initial_scale=8.0, growth_interval=2))
>>> schedule.update(finite=False), schedule.scale
(False, 4.0)
>>> schedule.update(True), schedule.update(True), schedule.scale
(True, True, 8.0)
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class LossScalePolicy:
    """The settings of dynamic loss scaling (torch's ``GradScaler`` defaults)."""

    initial_scale: float = 2.0**16
    growth_factor: float = 2.0
    backoff_factor: float = 0.5
    growth_interval: int = 2000
    min_scale: float = 1.0

    def __post_init__(self) -> None:
        if (
            self.initial_scale <= 0
            or self.growth_factor <= 1
            or not 0 < self.backoff_factor < 1
            or self.growth_interval < 1
            or self.min_scale <= 0
        ):
            raise ValueError(
                "loss scaling needs initial_scale > 0, growth_factor > 1, "
                "0 < backoff_factor < 1, growth_interval >= 1 and min_scale > 0"
            )

    def next(self, scale: float, good_steps: int, finite: bool) -> tuple[float, int]:
        """The scale and the count of finite steps in a row after a step."""
        if not finite:
            return max(scale * self.backoff_factor, self.min_scale), 0
        good_steps += 1
        if good_steps >= self.growth_interval:
            return scale * self.growth_factor, 0
        return scale, good_steps


@dataclass
class DynamicLossScale:
    """The loss scale of a run under ``policy`` (see the module docstring)."""

    policy: LossScalePolicy = field(default_factory=LossScalePolicy)
    scale: float = field(init=False)
    good_steps: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.scale = float(self.policy.initial_scale)

    def update(self, finite: bool) -> bool:
        """Record whether this step's gradients were finite; return whether to apply them."""
        self.scale, self.good_steps = self.policy.next(self.scale, self.good_steps, finite)
        return finite

    def state_dict(self) -> dict:
        return {"scale": self.scale, "good_steps": self.good_steps}

    def load_state_dict(self, state: dict) -> None:
        self.scale = float(state["scale"])
        self.good_steps = int(state["good_steps"])

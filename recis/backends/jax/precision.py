"""Mixed precision for the dense step: a compute-dtype policy and dynamic loss scaling.

Parameters, embedding tables' gradients and optimizer math stay float32. A :class:`Policy` casts
the floating parameters and inputs of the loss to its ``compute_dtype`` and the per-example
losses back to float32; gradients come back float32 through the casts. With float16 compute, a
:class:`DynamicLossScale` multiplies the loss before differentiation and divides the gradients
after: a step whose gradients are not finite is skipped and the scale halves; after
``growth_interval`` finite steps in a row it doubles.

>>> import jax.numpy as jnp
>>> Policy.bf16().cast_to_compute({"x": jnp.ones(2), "ids": jnp.arange(2)})["x"].dtype
dtype(bfloat16)
>>> scale = DynamicLossScale.create(initial_scale=8.0, growth_interval=2)
>>> [float((scale := scale.adjust(ok)).scale) for ok in (False, True, True)]
[4.0, 4.0, 8.0]
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from recis.framework.loss_scale import LossScalePolicy


@dataclasses.dataclass(frozen=True)
class Policy:
    """Dtype in which the dense model computes (parameters and losses stay float32)."""

    compute_dtype: jnp.dtype = jnp.float32

    @classmethod
    def bf16(cls) -> Policy:
        return cls(jnp.bfloat16)

    @classmethod
    def fp16(cls) -> Policy:
        return cls(jnp.float16)

    def cast_to_compute(self, tree):
        """Floating leaves of ``tree`` in the compute dtype; other leaves unchanged."""
        return _cast_floating(tree, self.compute_dtype)

    def cast_to_output(self, tree):
        """Floating leaves of ``tree`` in float32."""
        return _cast_floating(tree, jnp.float32)


def _cast_floating(tree, dtype):
    def cast(leaf):
        is_float = hasattr(leaf, "dtype") and jnp.issubdtype(leaf.dtype, jnp.floating)
        return leaf.astype(dtype) if is_float else leaf

    return jax.tree.map(cast, tree)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class DynamicLossScale:
    """Loss scale ``scale`` and the count of finite steps since it last changed (a pytree),
    updated inside ``jit`` by the rule of its :class:`~recis.framework.loss_scale.LossScalePolicy`
    (the torch trainer's policy)."""

    scale: jax.Array
    good_steps: jax.Array
    policy: LossScalePolicy = dataclasses.field(
        default_factory=LossScalePolicy, metadata={"static": True}
    )

    @classmethod
    def create(
        cls,
        initial_scale: float | None = None,
        growth_interval: int | None = None,
        factor: float | None = None,
        min_scale: float | None = None,
    ) -> DynamicLossScale:
        """A loss scale under the default policy, with the settings given replaced (``factor``
        grows the scale and its inverse shrinks it)."""
        given = {
            "initial_scale": initial_scale,
            "growth_interval": growth_interval,
            "min_scale": min_scale,
        }
        if factor is not None:
            given |= {"growth_factor": factor, "backoff_factor": 1.0 / factor if factor else 0.0}
        policy = LossScalePolicy(**{k: v for k, v in given.items() if v is not None})
        return cls.from_policy(policy)

    @classmethod
    def from_policy(cls, policy: LossScalePolicy) -> DynamicLossScale:
        return cls(jnp.asarray(policy.initial_scale, jnp.float32), jnp.zeros((), jnp.int32), policy)

    def scale_loss(self, loss: jax.Array) -> jax.Array:
        return loss * self.scale.astype(loss.dtype)

    def unscale(self, tree):
        """Gradients of the scaled loss → gradients of the loss (float32)."""
        return jax.tree.map(lambda g: g.astype(jnp.float32) / self.scale, tree)

    def adjust(self, finite: jax.Array) -> DynamicLossScale:
        """The scale after a step whose gradients were ``finite`` (or not)."""
        policy = self.policy
        good = jnp.where(finite, self.good_steps + 1, 0)
        grow = good >= policy.growth_interval
        scale = jnp.where(
            finite,
            jnp.where(grow, self.scale * policy.growth_factor, self.scale),
            jnp.maximum(self.scale * policy.backoff_factor, policy.min_scale),
        )
        return dataclasses.replace(self, scale=scale, good_steps=jnp.where(grow, 0, good))


def all_finite(tree) -> jax.Array:
    """Whether every element of every leaf of ``tree`` is finite (a boolean scalar): a sum of
    the elements times zero, NaN where one is NaN or infinite (one fused reduction, where
    ``isfinite(leaf).all()`` builds a boolean array first)."""
    sums = [jnp.sum(leaf * jnp.zeros((), leaf.dtype)) for leaf in jax.tree.leaves(tree)]
    return jnp.isfinite(sum(sums)) if sums else jnp.asarray(True)

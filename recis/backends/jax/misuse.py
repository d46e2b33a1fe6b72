"""Loud errors for the two ways a JAX program can lose its sparse updates silently.

The engine's tables live outside JAX. A lookup inside a JAX transformation (``jit``, ``grad``,
``nnx.value_and_grad``, ``vmap``...) would run once while tracing, or give activations no
gradient flows back from, so :func:`check_not_traced` refuses it with a
:class:`TracedLookupError`. A training lookup whose gradients are never given back before the
next training lookup or the sparse optimizer's step would leave its rows untrained:
:class:`UnappliedGradientsError`.

>>> import jax, numpy as np
>>> check_not_traced(["f"], {"f": np.array([1])})  # eager: fine
>>> try:
...     jax.jit(lambda ids: check_not_traced(["f"], {"f": ids}))(np.array([1]))
... except TracedLookupError as error:
...     print(str(error).splitlines()[0])
features ['f']: a sparse lookup ran inside a JAX transformation (jit, grad, vmap...).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import jax
from jax.extend.core import get_opaque_trace_state

_CONVENTION = "nnx"
_TOP_LEVEL = get_opaque_trace_state(convention=_CONVENTION)

LOOKUP_OUTSIDE = (
    "Look the ids up outside the transformation and pass the activations in:\n"
    "    features, context = embedding.lookup(batch)      # eager, before the jitted step\n"
    "    loss, (grads, feature_grads) = train_step(model, optimizer, features, batch)\n"
    "    embedding.apply_gradients(context, feature_grads)\n"
    "    sparse_optimizer.step()\n"
    "or let recis.backends.jax.flax.nnx_train_step (or TrainStep) run the whole step."
)


class TracedLookupError(TypeError):
    """A sparse lookup reached a JAX transformation (see the module docstring)."""


class UnappliedGradientsError(RuntimeError):
    """A training lookup's gradients were never applied (see the module docstring)."""


def under_transformation() -> bool:
    """Whether this code runs inside a JAX transformation (jit, grad, vmap...)."""
    return get_opaque_trace_state(convention=_CONVENTION) != _TOP_LEVEL


def check_not_traced(features: Iterable[str], batch: Mapping) -> None:
    """Raise :class:`TracedLookupError` when ``batch`` holds tracers of ``features`` or the
    caller runs inside a JAX transformation."""
    features = list(features)
    traced = [f for f in features if isinstance(batch.get(f), jax.core.Tracer)]
    if not traced and not under_transformation():
        return
    raise TracedLookupError(
        f"features {traced or features}: a sparse lookup ran inside a JAX transformation "
        "(jit, grad, vmap...).\nRecIS tables live outside JAX: traced, a lookup would run once "
        "at trace time, and its activations would get no gradient.\n" + LOOKUP_OUTSIDE
    )


def unapplied_error(features: list[str], before: str) -> UnappliedGradientsError:
    """The error for a training lookup of ``features`` left unapplied ``before`` something."""
    return UnappliedGradientsError(
        f"features {features}: the gradients of the last training lookup were never applied "
        f"before {before}; its rows would not learn.\nAfter each training lookup call "
        "embedder.apply_gradients(context, feature_grads) (then the sparse optimizer's step), "
        "look up with train=False for evaluation, or drop a lookup on purpose with "
        "embedder.discard(context)."
    )

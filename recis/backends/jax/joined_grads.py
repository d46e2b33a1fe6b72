"""The gradients of features combined in one call, handed to the engine as one buffer.

The engine combines the features that share an option in one call, whose output holds them back
to back (:func:`~recis.embedding.layout.layout_run`); their gradients must come back laid out
the same way. Returned by the dense step one array per feature, they would be copied into a
fresh buffer at every step. Instead the traced step concatenates them (:func:`join`, with zero
segments in the layout's alignment gaps) into one output, and :func:`with_joined_views` hands
the engine NumPy views of it, which :meth:`~recis.embedding.layout.RunLayout.join` takes as
they are.

>>> import jax.numpy as jnp
>>> runs = (((2,), (("a", 0, 1, (1, 2)), ("b", 2, 3, (1, 2)))),)  # a gap segment at 1
>>> join({"a": jnp.ones((1, 2)), "b": jnp.full((1, 2), 3.0)}, runs)["a"].tolist()
[[1.0, 1.0], [0.0, 0.0], [3.0, 3.0]]
"""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np

from recis.backends.jax.embedding import LookupContext


def joined_runs(contexts: Sequence[LookupContext]) -> tuple:
    """Per combine call of several features, static data for the dense step: the segment
    shape and, in layout order, each feature's ``(feature, start, stop, shape)``."""
    return tuple(
        (segment, tuple(sorted(
            ((f, start, stop, layout.shapes[f]) for f, (start, stop) in layout.slices.items()),
            key=lambda item: item[1],
        )))
        for context in contexts
        for layout, segment in context.joined_runs()
    )  # fmt: skip


def join(grads: dict, joined: tuple) -> dict:
    """``grads`` with each joined run's features replaced by one zero-gapped array of the
    run's layout, under its first feature (traced)."""
    grads = dict(grads)
    for segment, features in joined:
        pieces, end = [], 0
        for feature, start, stop, _ in features:
            if start > end:
                pieces.append(jnp.zeros((start - end, *segment), jnp.float32))
            pieces.append(grads.pop(feature).reshape(-1, *segment).astype(jnp.float32))
            end = stop
        grads[features[0][0]] = jnp.concatenate(pieces)
    return grads


def with_joined_views(metrics, joined: tuple):
    """``metrics`` with each joined run's features as NumPy views of the run's one array, so
    that the engine joins them without a copy (:meth:`~recis.embedding.layout.RunLayout.join`)."""
    if not joined:
        return metrics
    grads = dict(metrics.embedding_grads)
    for _, features in joined:
        buffer = np.asarray(grads.pop(features[0][0]))  # shares the output's memory on the CPU
        for feature, start, stop, shape in features:
            grads[feature] = buffer[start:stop].reshape(shape)
    return metrics._replace(embedding_grads=grads)

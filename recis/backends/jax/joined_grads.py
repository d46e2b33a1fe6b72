"""The features combined in one call, handed to the dense step and back as one buffer.

The engine combines the features that share an option in one call, whose output holds them back
to back (:func:`~recis.embedding.layout.layout_run`); their gradients must come back laid out
the same way. Handed over one array per feature, the activations would cross into JAX one
import at a time, and their gradients would be copied into a fresh buffer at every step.
Instead :func:`jax_activations` imports each such call's output once (over DLPack, no copy),
the traced step splits it into the features (:func:`split`), so that the gradient w.r.t. it is
the joined gradient, one concatenation (zero in the layout's alignment gaps), and
:func:`with_joined_views` hands the engine NumPy views of that one output, which
:meth:`~recis.embedding.layout.RunLayout.join` takes as they are.

>>> import jax.numpy as jnp
>>> runs = (((2,), (("a", 0, 1, (1, 2)), ("b", 2, 3, (1, 2)))),)  # a gap segment at 1
>>> out = split({"a": jnp.arange(6.0).reshape(3, 2)}, runs)
>>> out["a"].tolist(), out["b"].tolist()
([[0.0, 1.0]], [[4.0, 5.0]])
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
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


def jax_activations(values: dict, joined: tuple) -> tuple[dict, tuple]:
    """The engine's activations ``values`` as JAX arrays, the features of each ``joined`` run
    as the run's one output under its first feature; also the runs so joined (a run whose
    features are not back to back in one buffer is imported feature by feature)."""
    values, out, kept = dict(values), {}, []
    for segment, features in joined:
        combined = _combined_output(values, segment, features)
        if combined is None:
            continue
        for feature, *_ in features:
            del values[feature]
        out[features[0][0]] = jax.dlpack.from_dlpack(combined)
        kept.append((segment, features))
    out |= {feature: jax.dlpack.from_dlpack(value) for feature, value in values.items()}
    return out, tuple(kept)


def _combined_output(values: dict, segment: tuple, features) -> np.ndarray | None:
    """The run's output ``[segments, *segment]`` as one view of the buffer its features'
    activations are views of, where they lie in it as the layout says."""
    first = values[features[0][0]]
    base = first.base
    if not isinstance(base, np.ndarray) or not base.flags.c_contiguous:
        return None
    width = int(np.prod(segment, dtype=np.int64)) * first.itemsize  # bytes per segment
    start = first.ctypes.data - base.ctypes.data
    for feature, begin, _, _ in features:
        value = values[feature]
        where = value.ctypes.data - base.ctypes.data - begin * width
        if where != start or value.base is not base or not value.flags.c_contiguous:
            return None
    size = features[-1][2] * width
    if start % first.itemsize or start + size > base.nbytes:
        return None
    raw = base.reshape(-1).view(np.uint8)[start : start + size]
    return raw.view(first.dtype).reshape(-1, *segment)


def split(embedded: dict, joined: tuple) -> dict:
    """``embedded`` with each joined run's one array (under its first feature) split into the
    run's features (traced). One ``lax.split`` per run, whose gradient is one concatenation
    (slices would each pad their gradient to the run's length, to be summed)."""
    embedded = dict(embedded)
    for _, features in joined:
        combined = embedded.pop(features[0][0])
        sizes, pieces_of = [], []  # the pieces in order: gaps (None) and features
        end = 0
        for feature, start, stop, shape in features:
            if start > end:
                sizes.append(start - end)
                pieces_of.append(None)
            sizes.append(stop - start)
            pieces_of.append((feature, shape))
            end = stop
        if combined.shape[0] > end:
            sizes.append(combined.shape[0] - end)
            pieces_of.append(None)
        for piece, owner in zip(jax.lax.split(combined, sizes), pieces_of, strict=True):
            if owner is not None:
                embedded[owner[0]] = piece.reshape(owner[1])
    return embedded


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

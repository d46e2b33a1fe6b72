"""The embedding path as autograd nodes: engine results cross into torch once forward, and their
gradients cross back once backward.

:func:`embed` runs an :class:`~recis.embedding.embedder.Embedder` lookup and returns the
activations as tensors of one graph node, whose backward hands all their gradients to
:meth:`~recis.embedding.embedder.Embedder.apply_gradients` in one call. :func:`rows_tensor` does
the same for the rows of a :class:`~recis.embedding.embedder.FoundRows` (a table looked up
without a combiner). Engine arrays are NumPy (CPU tensors) or CuPy (CUDA tensors, computed on
torch's current stream); the tensors share their memory (:mod:`recis.backends.torch.bridge`).

>>> import numpy as np, torch
>>> from recis.embedding.embedder import Embedder
>>> from recis.embedding.option import EmbeddingOption
>>> embedder = Embedder({"f": EmbeddingOption(embedding_dim=2, shared_name="f")})
>>> trigger = torch.zeros((), requires_grad=True)
>>> out = embed(embedder, {"f": np.array([[3, 3]])}, train=True, trigger=trigger)
>>> out["f"].sum().backward()
>>> embedder.tables["f"].grads.summed(1)[1].tolist()  # id 3, seen twice
[[2.0, 2.0]]
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from recis.backends.torch.bridge import as_engine, as_tensor, beside_torch
from recis.embedding.embedder import Embedder, FoundRows


class _Embed(torch.autograd.Function):
    @staticmethod
    def forward(ctx, trigger, embedder, context, features, *values):
        ctx.embedder, ctx.context, ctx.features = embedder, context, features
        ctx.set_materialize_grads(False)
        return tuple(as_tensor(value) for value in values)

    @staticmethod
    @beside_torch
    def backward(ctx, *grads):
        given = {
            feature: _engine_gradient(grad, feature)
            for feature, grad in zip(ctx.features, grads, strict=True)
            if grad is not None
        }
        ctx.embedder.apply_gradients(ctx.context, given, allow_missing=True)
        return (None,) * (4 + len(grads))


def _engine_gradient(grad: torch.Tensor, feature: str):
    """A feature's gradient for the engine. A CPU gradient is passed as a NumPy view with its
    strides (e.g. a slice of the gradient of a ``torch.stack``): the engine's backward reads it
    in place where it gathers the features' gradients, instead of copying it twice."""
    grad = grad.detach().float()
    if grad.device.type == "cpu":
        return grad.numpy()
    return as_engine(grad, f"feature {feature!r} gradient")


def embed(
    embedder: Embedder, inputs: Mapping, *, train: bool, trigger: torch.Tensor
) -> dict[str, torch.Tensor]:
    """The activations of ``embedder``'s features for ``inputs`` (engine inputs or
    :class:`~recis.embedding.plan.Request` s) as tensors; in training their gradients go to the
    tables when backward runs. ``trigger`` is a tensor that requires grad (it makes autograd run
    the backward even though no input of the node does)."""
    values, context = embedder.lookup(inputs, train=train)
    features = tuple(values)
    if not train:
        return {feature: as_tensor(values[feature]) for feature in features}
    tensors = _Embed.apply(trigger, embedder, context, features, *values.values())
    out = dict(zip(features, tensors, strict=True))
    for feature in features:
        if not embedder.options[feature].trainable:
            out[feature] = out[feature].detach()
    return out


class _Rows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, trigger, found):
        ctx.found = found
        return as_tensor(found.values)

    @staticmethod
    @beside_torch
    def backward(ctx, grad):
        grad = as_engine(grad.float(), "gradient")
        scale = ctx.found.grad_scale
        ctx.found.record(grad if scale is None else grad * scale[:, None])
        return None, None


def rows_tensor(found: FoundRows, *, train: bool, trigger: torch.Tensor) -> torch.Tensor:
    """``found.values`` [U, dim] as a tensor whose gradient, in training, is recorded for the
    rows (scaled by ``found.grad_scale``) when backward runs."""
    if not train:
        return as_tensor(found.values)
    return _Rows.apply(trigger, found)

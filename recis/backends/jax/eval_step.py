"""``NnxEvalStep``: the loss and outputs of an NNX model on a batch, without training it.

The sparse features are looked up without inserting ids, the batch is padded to a bucket size
(as in :class:`~recis.backends.jax.TrainStep`) and a jitted forward pass runs the model in its
evaluation mode (``model.eval()``: dropout off, batch statistics frozen), reading the model's
current variables at each call. ``loss_fn(model, batch)`` returns ``(per_example_loss, aux)``;
the step returns the mean loss over the real samples and ``aux`` (padded, floats as float32).

>>> import numpy as np, optax
>>> from flax import nnx
>>> from recis.backends.jax import EmbeddingOption
>>> from recis.backends.jax.flax import SparseEmbedding
>>> class Model(nnx.Module):
...     def __init__(self):
...         self.embedding = SparseEmbedding({"f": EmbeddingOption(2, shared_name="f")})
...         self.linear = nnx.Linear(2, 1, rngs=nnx.Rngs(0))
...     def __call__(self, batch):
...         return self.linear(self.embedding(batch)["f"])[:, 0]
>>> def loss_fn(model, batch):
...     logits = model(batch)
...     return optax.sigmoid_binary_cross_entropy(logits, batch["label"]), logits
>>> model = Model()
>>> loss, logits = NnxEvalStep(model, loss_fn)({"f": np.array([3, 4, 5]), "label": np.ones(3)})
>>> round(float(loss), 4), logits.shape, len(model.embedding.tables["f"])
(0.6931, (3,), 0)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from recis.backends.jax.buckets import BatchBuckets, pad_rows
from recis.backends.jax.flax import sparse_layers
from recis.backends.jax.precision import Policy
from recis.backends.jax.train import _batch_size, masked_mean


class NnxEvalStep:
    """Evaluates ``model`` with ``loss_fn`` (see the module docstring).

    Args:
        model: an NNX model holding :class:`~recis.backends.jax.flax.SparseEmbedding` layers; it
            is left in training mode.
        loss_fn: ``(model, batch) -> (per_example_loss, aux)``.
        policy: compute-dtype :class:`Policy` (default float32).
        buckets: the :class:`BatchBuckets` of padded batch sizes (default: adaptive).
    """

    def __init__(
        self,
        model: nnx.Module,
        loss_fn: Callable,
        *,
        policy: Policy | None = None,
        buckets: BatchBuckets | None = None,
    ) -> None:
        self.model = model
        self.loss_fn = loss_fn
        self.policy = policy if policy is not None else Policy()
        self.buckets = buckets if buckets is not None else BatchBuckets()
        self.embedders = [layer.embedder for layer in sparse_layers(model)]
        self.device = jax.local_devices()[0]
        model.eval()
        self.graphdef = nnx.split(model, nnx.Param, ...)[0]
        model.train()
        self._forward = jax.jit(self._forward_impl)

    def __call__(self, batch: Mapping) -> tuple[jax.Array, Any]:
        """(mean loss over the real samples, ``aux``) of ``batch``."""
        num_samples = _batch_size(batch)
        size = self.buckets(num_samples)
        embedded = {}
        for embedder in self.embedders:
            embedded.update(embedder.lookup(batch, train=False, batch_size=size)[0])
        if self.device.platform != "cpu":  # the engine's activations are host arrays
            embedded = jax.device_put(embedded, self.device)
        dense = {k: pad_rows(v, size) for k, v in batch.items() if k not in embedded}
        # committed like the train step's outputs, so that one program serves before and after
        variables = jax.device_put(nnx.split(self.model, nnx.Param, ...)[1:], self.device)
        count = jnp.asarray(num_samples, jnp.int32)
        return self._forward(*variables, embedded, dense, count)

    def _forward_impl(self, params, state, embedded, dense, count):
        batch = self.policy.cast_to_compute({**dense, **embedded})
        model = nnx.merge(self.graphdef, self.policy.cast_to_compute(params), state)
        losses, aux = self.loss_fn(model, batch)
        loss = masked_mean(self.policy.cast_to_output(losses), count)
        return loss, self.policy.cast_to_output(aux)

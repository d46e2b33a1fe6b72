"""DLRM for Criteo-shaped data on the JAX backend: the torch model's architecture in Flax NNX.

A bottom MLP embeds the 13 dense features into the embedding width; the 26 categorical features
look up growable tables (named as in the torch model, so checkpoints' tables load into either);
the pairwise dot products of all 27 vectors, with the bottom output, feed a top MLP. Calling the
model returns the per-example loss and the click probabilities.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from recis.backends.jax import EmbeddingOption
from recis.backends.jax.flax import SparseEmbedding
from recis.core.initializers import UniformInitializer
from recis.tools.synthetic import CATEGORICAL, DENSE


def mlp(sizes: list[int], last_activation: bool, rngs: nnx.Rngs) -> nnx.Sequential:
    layers = []
    for index, (width, size) in enumerate(itertools.pairwise(sizes)):
        layers.append(nnx.Linear(width, size, rngs=rngs))
        if last_activation or index < len(sizes) - 2:
            layers.append(nnx.relu)
    return nnx.Sequential(*layers)


class DLRM(nnx.Module):
    """Bottom MLP, embeddings, dot interactions, top MLP."""

    def __init__(self, dim: int = 16, bottom=(64, 32), top=(256, 64), seed: int = 0) -> None:
        rngs = nnx.Rngs(seed)
        bound = dim**-0.5
        options = {
            c: EmbeddingOption(
                embedding_dim=dim, shared_name=c, initializer=UniformInitializer(-bound, bound)
            )
            for c in CATEGORICAL
        }
        self.embeddings = SparseEmbedding(options)
        self.bottom = mlp([len(DENSE), *bottom, dim], last_activation=True, rngs=rngs)
        vectors = len(CATEGORICAL) + 1
        pairs = vectors * (vectors - 1) // 2
        self.top = mlp([dim + pairs, *top, 1], last_activation=False, rngs=rngs)

    def logits(self, batch: dict) -> jax.Array:
        dense = jnp.log1p(jnp.maximum(jnp.concatenate([batch[n] for n in DENSE], axis=1), 0))
        bottom = self.bottom(dense)
        out = self.embeddings(batch)
        vectors = jnp.stack([bottom, *(out[c] for c in CATEGORICAL)], axis=1)  # [B, 27, dim]
        dots = jnp.einsum("bid,bjd->bij", vectors, vectors)
        first, second = np.triu_indices(vectors.shape[1], 1)  # the pairs i < j
        return self.top(jnp.concatenate([bottom, dots[:, first, second]], axis=1))[:, 0]

    def __call__(self, batch: dict) -> tuple[jax.Array, jax.Array]:
        logits = self.logits(batch).astype(jnp.float32)
        label = batch["label"].reshape(-1).astype(jnp.float32)
        return optax.sigmoid_binary_cross_entropy(logits, label), jax.nn.sigmoid(logits)

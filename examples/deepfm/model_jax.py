"""DeepFM for Criteo-shaped data on the JAX backend: the torch model's architecture in Flax NNX.

13 dense features (``I1``..``I13``, log-transformed) and 26 categorical ones (``C1``..``C26``,
lists of raw int64 ids). Each categorical feature has an embedding table (``dim`` wide, in the FM
interactions and the MLP) and a bias table (1 wide, the first-order term); all tables grow with
the data and carry the torch model's names, so checkpoints' tables load into either model.
:meth:`DeepFM.prepare_batch` feeds each column to both of its tables (the torch model's feature
engine does this inside its forward pass; here it runs with the data pipeline, outside ``jit``).
Calling the model returns the per-example loss and the click probabilities.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from recis.backends.jax import DataParallel, EmbeddingOption
from recis.backends.jax.flax import SparseEmbedding
from recis.core.initializers import TruncNormalInitializer
from recis.tools.synthetic import CATEGORICAL, DENSE


def embedding_options(dim: int) -> dict[str, EmbeddingOption]:
    init = TruncNormalInitializer(std=0.01)
    options = {}
    for column in CATEGORICAL:
        options[f"{column}_emb"] = EmbeddingOption(
            embedding_dim=dim, shared_name=f"{column}_emb", initializer=init
        )
        options[f"{column}_bias"] = EmbeddingOption(
            embedding_dim=1, shared_name=f"{column}_bias", initializer=init
        )
    return options


class DeepFM(nnx.Module):
    """FM (first and second order) + MLP over the embeddings and dense features; the tables
    sharded over the devices of ``mesh``, if given."""

    def __init__(
        self,
        dim: int = 16,
        hidden: tuple[int, ...] = (400, 400, 400),
        seed: int = 0,
        mesh: DataParallel | None = None,
    ) -> None:
        rngs = nnx.Rngs(seed)
        self.embeddings = SparseEmbedding(embedding_options(dim), mesh=mesh)
        widths = [len(CATEGORICAL) * dim + len(DENSE), *hidden]
        layers = []
        for width, size in itertools.pairwise(widths):
            layers += [nnx.Linear(width, size, rngs=rngs), nnx.relu]
        self.mlp = nnx.Sequential(*layers, nnx.Linear(widths[-1], 1, rngs=rngs))

    @staticmethod
    def prepare_batch(batch: dict) -> dict:
        """The batch with each categorical column under its two features' names."""
        features = {f"{c}_{kind}": batch[c] for c in CATEGORICAL for kind in ("emb", "bias")}
        return {"label": batch["label"], **{name: batch[name] for name in DENSE}, **features}

    def logits(self, batch: dict) -> jax.Array:
        out = self.embeddings(batch)
        stacked = jnp.stack([out[f"{c}_emb"] for c in CATEGORICAL], axis=1)  # [B, 26, dim]
        first_order = jnp.concatenate([out[f"{c}_bias"] for c in CATEGORICAL], axis=1).sum(1)
        second_order = 0.5 * (stacked.sum(1) ** 2 - (stacked**2).sum(1)).sum(1)
        dense = jnp.log1p(jnp.maximum(jnp.concatenate([batch[n] for n in DENSE], axis=1), 0))
        flat = stacked.reshape(stacked.shape[0], -1)
        deep = self.mlp(jnp.concatenate([flat, dense], axis=1))[:, 0]
        return first_order + second_order + deep

    def __call__(self, batch: dict) -> tuple[jax.Array, jax.Array]:
        logits = self.logits(batch).astype(jnp.float32)
        label = batch["label"].reshape(-1).astype(jnp.float32)
        return optax.sigmoid_binary_cross_entropy(logits, label), jax.nn.sigmoid(logits)

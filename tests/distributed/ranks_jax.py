"""Rank side of the JAX sharded-training tests: a small model over two physical tables (one of them
holding two logical tables) trained on global batches, each rank taking its slice of every batch;
the JAX Trainer on data of uneven length per rank; a loss-scaled step skipped by every rank."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from global_batches import GLOBAL_BATCH, global_batch
from global_batches import options as shared_options

from recis.backends.jax import (
    DynamicLossScale,
    Embedder,
    EmbeddingOption,
    SparseOptimizer,
    TrainStep,
    rules,
)
from recis.backends.jax.flax import SparseEmbedding
from recis.backends.jax.trainer import Trainer, TrainingArguments
from recis.hooks.hook import Hook

STEPS = 4
FEATURES = ("user", "item", "tag")


def options(grad_reduce_by: str = "worker") -> dict[str, EmbeddingOption]:
    """The sharded-training tests' tables (:func:`global_batches.options`) as JAX options."""
    return shared_options(grad_reduce_by, EmbeddingOption)


def initial_params() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "hidden": rng.normal(0.0, 0.3, (16, 8)).astype(np.float32),
        "hidden_bias": np.zeros(8, np.float32),
        "out": rng.normal(0.0, 0.3, (8, 1)).astype(np.float32),
        "out_bias": np.zeros(1, np.float32),
    }


def loss_fn(params, batch):
    """Per-example BCE of a two-layer MLP over the three features' activations."""
    x = jnp.concatenate([batch[f] for f in FEATURES], axis=1)
    hidden = jnp.maximum(x @ params["hidden"] + params["hidden_bias"], 0.0)
    logits = (hidden @ params["out"] + params["out_bias"])[:, 0]
    return optax.sigmoid_binary_cross_entropy(logits, batch["label"])


def rank_slice(batch: dict, rank: int, world_size: int) -> dict[str, np.ndarray]:
    size = GLOBAL_BATCH // world_size
    return {k: v[rank * size : (rank + 1) * size] for k, v in batch.items()}


def train(rank: int, world_size: int, grad_reduce_by: str, mesh=None) -> dict:
    """Train STEPS steps (the dense step split over ``mesh``, a ``DataParallel``, and the
    tables sharded over its devices, if given); return this rank's tables, the dense
    parameters and the losses."""
    embedder = Embedder(options(grad_reduce_by), mesh=mesh)
    sparse = SparseOptimizer(embedder, rules.AdamW(weight_decay=0.01), 0.05)
    step = TrainStep(loss_fn, initial_params(), optax.adam(0.01), sparse, [embedder], mesh=mesh)
    losses = [float(step(rank_slice(global_batch(s), rank, world_size)).loss) for s in range(STEPS)]
    return {
        "tables": {name: table.state_dict() for name, table in embedder.tables.items()},
        "dense": {name: np.asarray(value) for name, value in step.params.items()},
        "losses": losses,
        "data_parallel": step.communicator is not None,
        "shards": device_shards(embedder),
    }


def device_shards(embedder: Embedder) -> dict:
    """Per table sharded over devices: its children and each device's (ids, tags)."""
    return {
        name: {
            "children": table.children,
            "entries": [shard.ids.export()[:2] for shard in table.shards],
        }
        for name, table in embedder.tables.items()
        if hasattr(table, "shards")
    }


def train_both(rank: int, world_size: int) -> dict:
    """:func:`train` with each way of reducing an id's gradients."""
    return {mode: train(rank, world_size, mode) for mode in ("worker", "id")}


class Model(nnx.Module):
    """The model of :func:`loss_fn` as an NNX module, for the Trainer."""

    def __init__(self) -> None:
        self.embedding = SparseEmbedding(options())
        self.linear = nnx.Linear(16, 1, rngs=nnx.Rngs(0))

    def __call__(self, batch):
        out = self.embedding(batch)
        logits = self.linear(jnp.concatenate([out[f] for f in FEATURES], axis=1))[:, 0]
        return optax.sigmoid_binary_cross_entropy(logits, batch["label"]), logits


class LossRecorder(Hook):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def after_step(self, metrics=None, global_step=0) -> None:
        self.losses.append(metrics["loss"])


def trainer_on_uneven_data(rank: int, world_size: int, output_dir: str) -> dict:
    """Rank r has 3 + 2r training batches and 2 + r evaluation batches; checkpoints go to
    ``output_dir`` (shared by the ranks)."""
    model, recorder = Model(), LossRecorder()
    data = [rank_slice(global_batch(s), rank, world_size) for s in range(3 + 2 * rank)]
    trainer = Trainer(
        model, TrainingArguments(output_dir=output_dir, log_steps=100), data,
        data[: 2 + rank], hooks=[recorder], dense_optimizer=optax.adam(0.01),
        sparse_optimizer=SparseOptimizer(model.embedding, rules.Adam(), 0.01),
    )  # fmt: skip
    trainer.train()
    evaluation = trainer.evaluate()
    return {"global_step": trainer.global_step, "losses": recorder.losses, "eval": evaluation}


def separable_loss(params, batch):
    """Dense and sparse terms apart: an infinite ``weight`` makes only the embeddings'
    gradients non-finite."""
    embedding_term = batch["user"].sum(axis=1) * batch["weight"]
    return embedding_term + jnp.sum((params["b"] - 1.0) ** 2)


def loss_scaled_step(rank: int, world_size: int) -> dict:
    """One loss-scaled step where only rank 1's embedding gradients are not finite."""
    embedder = Embedder({"user": options()["user"]})
    sparse = SparseOptimizer(embedder, rules.SGD(), 0.1)
    scale = DynamicLossScale.create(initial_scale=8.0)
    step = TrainStep(separable_loss, {"b": jnp.zeros(2)}, optax.sgd(0.1), sparse, [embedder],
                     loss_scale=scale)  # fmt: skip
    weight = np.full(4, np.inf if rank == 1 else 1.0, np.float32)
    out = step({"user": np.arange(4)[:, None] + 10 * rank, "weight": weight})
    (table,) = embedder.tables.values()
    state = table.state_dict()
    moved = state["embedding"] - table.initial_values(state["id"], state["tag"])
    return {
        "applied": out.applied,
        "b": np.asarray(step.params["b"]),
        "scale": float(step.loss_scale.scale),
        "rows_moved": float(np.abs(moved).max()),
    }


def two_rank_checks(rank: int, world_size: int, output_dir: str) -> dict:
    """Everything the tests run on two ranks, in one launch."""
    return {
        "parity": train_both(rank, world_size),
        "trainer": trainer_on_uneven_data(rank, world_size, output_dir),
        "loss_scale": loss_scaled_step(rank, world_size),
    }

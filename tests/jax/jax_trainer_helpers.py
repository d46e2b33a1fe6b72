"""A small CTR model, its data and its trainer for the JAX trainer tests (the torch trainer
tests' tiny model, in Flax NNX)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from recis.backends.jax import EmbeddingOption, SparseOptimizer, rules
from recis.backends.jax.flax import SparseEmbedding
from recis.backends.jax.named_arrays import named_arrays
from recis.backends.jax.trainer import Trainer, TrainingArguments
from recis.core.initializers import NormalInitializer
from recis.framework.auc import auc_thresholds, confusion_counts, threshold_auc
from recis.framework.metrics import add_metric
from recis.io import OrcDataset
from recis.tools.synthetic import write_dataset

COLUMNS = ("C1", "C2", "C3")
DIM = 4


def embedding_options(module=None) -> dict:
    """The three tables, as options of ``module`` (default: the JAX backend)."""
    option = EmbeddingOption if module is None else module.EmbeddingOption
    init = NormalInitializer(std=0.05)
    return {c: option(embedding_dim=DIM, shared_name=c, initializer=init) for c in COLUMNS}


class TinyModel(nnx.Module):
    """Embeddings of three categorical columns and one dense column, a small MLP with dropout."""

    def __init__(self, seed: int = 0) -> None:
        rngs = nnx.Rngs(seed)
        self.embedding = SparseEmbedding(embedding_options())
        self.hidden = nnx.Linear(3 * DIM + 1, 8, rngs=rngs)
        self.dropout = nnx.Dropout(0.1, rngs=rngs)
        self.out = nnx.Linear(8, 1, rngs=rngs)

    def __call__(self, batch: dict) -> jax.Array:
        out = self.embedding(batch)
        dense = jnp.log1p(jnp.maximum(batch["I1"], 0))
        x = jnp.concatenate([*(out[c] for c in COLUMNS), dense], axis=1)
        return self.out(self.dropout(nnx.relu(self.hidden(x))))[:, 0]


def loss_fn(model: TinyModel, batch: dict):
    """Per-example BCE and the predicted click probabilities."""
    logits = model(batch)
    label = batch["label"].reshape(-1)
    return optax.sigmoid_binary_cross_entropy(logits, label), jax.nn.sigmoid(logits)


class StreamingAuc:
    """Threshold AUC over every sample seen, reported as the metric ``auc``."""

    def __init__(self) -> None:
        self.thresholds = auc_thresholds(200)
        self.counts = np.zeros((4, self.thresholds.size), np.int64)

    def __call__(self, predictions: np.ndarray, batch: dict) -> None:
        self.counts += confusion_counts(predictions, batch["label"], self.thresholds)
        add_metric("auc", threshold_auc(self.counts))


def make_data(directory: str, rows: int = 2000, seed: int = 0) -> str:
    write_dataset(directory, rows=rows, files=2, seed=seed, stripe_size=4096)
    return directory


def dataset(directory: str, batch_size: int = 64, shuffle: bool = True, output="numpy"):
    data = OrcDataset(
        batch_size, read_threads_num=2, prefetch=2, shuffle=shuffle, seed=3,
        transform_fn=[lambda tables: tables[0]], output=output,
    )  # fmt: skip
    data.add_path(directory)
    data.fixedlen_feature("label", [0.0])
    data.fixedlen_feature("I1", [0.0])
    for column in COLUMNS:
        data.varlen_feature(column)
    return data


def build(data_dir: str, output_dir, accumulation: int = 1, **kwargs) -> Trainer:
    """A trainer of a fresh TinyModel, deterministic; ``kwargs`` go to TrainingArguments."""
    model = TinyModel()
    sparse = SparseOptimizer(
        model.embedding, rules.Adagrad(), 0.05, accumulation_steps=accumulation
    )
    kwargs.setdefault("exact_steps", True)  # train(n): up to global step n
    args = TrainingArguments(
        output_dir=str(output_dir), log_steps=1000, gradient_accumulation_steps=accumulation,
        **kwargs,
    )  # fmt: skip
    return Trainer(
        model, args, dataset(data_dir), dataset(data_dir, shuffle=False),
        dense_optimizer=optax.adam(1e-2), sparse_optimizer=sparse, loss_fn=loss_fn,
        metrics_fn=StreamingAuc(),
    )  # fmt: skip


def final_state(trainer: Trainer) -> dict[str, np.ndarray]:
    """Every weight of the run: parameters, model state, optimizer state and table rows."""
    step = trainer.train_step
    state = named_arrays(step.params, "params") | named_arrays(step.state, "state")
    state |= named_arrays(step.opt_state, "opt_state")
    for name, table in trainer.model.embedding.tables.items():
        state |= {f"{name}/{k}": np.asarray(v) for k, v in table.state_dict().items()}
    return state

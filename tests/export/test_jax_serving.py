"""JAX backend: a Flax DeepFM trained by the JAX Trainer, exported (base + delta), scores in
the Predictor what the trainer's evaluation step computes on the same rows."""

from __future__ import annotations

import jax
import numpy as np
import optax
import pytest

from examples.deepfm.model_jax import DeepFM
from recis.backends.jax import SparseOptimizer, rules
from recis.backends.jax.export import export_model, start_export_model
from recis.backends.jax.flax import sparse_layers
from recis.backends.jax.trainer import Trainer, TrainingArguments
from recis.io import OrcDataset
from recis.serving import Predictor
from recis.tools.synthetic import CATEGORICAL, declare_columns, write_dataset

BATCH = 64
FEATURES = {f"{c}_{kind}": c for c in CATEGORICAL for kind in ("emb", "bias")}


def batches(path) -> list[dict]:
    data = OrcDataset(BATCH, output="numpy", transform_fn=[lambda tables: tables[0]])
    data.add_path(str(path))
    declare_columns(data)
    return list(data)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_dataset(str(root / "train"), rows=640, files=1, seed=1)
    write_dataset(str(root / "eval"), rows=192, files=1, seed=2)
    return {"train": batches(root / "train"), "eval": batches(root / "eval")}


def test_predictor_scores_equal_the_trainers_evaluation_after_base_and_delta(tmp_path, data):
    model = DeepFM(dim=4, hidden=(16, 8), seed=0)
    trainer = Trainer(
        model,
        TrainingArguments(output_dir=str(tmp_path / "run"), log_steps=1000),
        dense_optimizer=optax.adamw(1e-2),
        sparse_optimizer=SparseOptimizer(sparse_layers(model), rules.AdamW(), 1e-2),
    )
    trainer.prepare_training()
    train = [DeepFM.prepare_batch(b) for b in data["train"]]
    for batch in train[:5]:
        trainer.run_step(batch)
    base = export_model(model, tmp_path / "base", train[0], features=FEATURES, step=5)
    for batch in train[5:]:
        trainer.run_step(batch)
    delta = export_model(model, tmp_path / "delta", train[0], features=FEATURES, since=base)
    full = export_model(model, tmp_path / "full", train[0], features=FEATURES)
    assert delta.manifest["dense"]["inputs"] == sorted(f"I{i}" for i in range(1, 14))
    assert all(
        a.equals(b) for a, b in zip(delta.state().values(), full.state().values(), strict=True)
    )

    predictor = Predictor(base, deltas=[delta])
    for raw in data["eval"]:
        batch = DeepFM.prepare_batch(raw)
        size = len(raw["label"])
        _, probabilities = trainer.eval_step(batch)
        logits = predictor.predict(raw)  # raw columns: the bundle's features select them
        np.testing.assert_allclose(
            np.asarray(jax.nn.sigmoid(logits)), np.asarray(probabilities)[:size], rtol=0, atol=1e-6
        )
        np.testing.assert_allclose(logits, np.asarray(model.logits(batch)), rtol=0, atol=1e-5)
    np.testing.assert_array_equal(
        Predictor(full).predict(data["eval"][0]), predictor.predict(data["eval"][0])
    )


def test_a_jax_model_trains_while_its_delta_is_exported_and_written(tmp_path, data):
    model = DeepFM(dim=4, hidden=(16, 8), seed=1)
    trainer = Trainer(
        model,
        TrainingArguments(output_dir=str(tmp_path / "run"), log_steps=1000),
        dense_optimizer=optax.adamw(1e-2),
        sparse_optimizer=SparseOptimizer(sparse_layers(model), rules.AdamW(), 1e-2),
    )
    trainer.prepare_training()
    train = [DeepFM.prepare_batch(b) for b in data["train"]]
    for batch in train[:3]:
        trainer.run_step(batch)
    base = start_export_model(model, tmp_path / "base", train[0], features=FEATURES, step=3)
    for batch in train[3:6]:
        trainer.run_step(batch)
    raw = data["eval"][0]
    expected = np.asarray(model.logits(DeepFM.prepare_batch(raw)))
    delta = start_export_model(
        model, tmp_path / "delta", train[0], features=FEATURES, step=6, since=base
    )
    for batch in train[6:]:
        trainer.run_step(batch)  # while the delta is exported and written
    assert not np.allclose(np.asarray(model.logits(DeepFM.prepare_batch(raw))), expected)
    predictor = Predictor(base.result(timeout=120), deltas=[delta.result(timeout=120)])
    np.testing.assert_allclose(predictor.predict(raw), expected, rtol=0, atol=1e-5)

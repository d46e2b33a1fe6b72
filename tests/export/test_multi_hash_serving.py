"""A feature hashed by ``IDMultiHash`` into several id spaces, each with its own table, exports
and serves: the Predictor runs the multi-hash and scores what the trainer's evaluation does."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from recis.backends.torch.export import export_model
from recis.features import FeatureEngine
from recis.features.feature import Feature
from recis.features.op import IDMultiHash, Mod, SelectField
from recis.framework.trainer import Trainer, TrainingArguments
from recis.nn import EmbeddingEngine, EmbeddingOption, filter_out_sparse_param
from recis.optim import SparseAdamW
from recis.serving import Predictor

BUCKETS = [97, 89, 61]


class CompositionalModel(nn.Module):
    """Item embedding = sum of its multi-hash rows (one table per hash); a user table."""

    def __init__(self) -> None:
        super().__init__()
        self.features = FeatureEngine(
            [
                Feature("item").add_op(SelectField("item")).add_op(IDMultiHash(BUCKETS)),
                Feature("user").add_op(SelectField("user")).add_op(Mod(1000)),
            ]
        )
        options = {
            f"item_multi_hash_{k}": EmbeddingOption(embedding_dim=4, shared_name=f"item_{k}")
            for k in range(len(BUCKETS))
        }
        options["user"] = EmbeddingOption(embedding_dim=4, shared_name="user", combiner="mean")
        self.embeddings = EmbeddingEngine(options)
        torch.manual_seed(0)
        self.dense = nn.Linear(9, 1)

    def logits(self, batch: dict) -> torch.Tensor:
        out = self.embeddings(self.features(batch))
        item = sum(out[f"item_multi_hash_{k}"] for k in range(len(BUCKETS)))
        return self.dense(torch.cat([item, out["user"], batch["price"]], dim=1)).squeeze(1)

    def forward(self, batch: dict) -> torch.Tensor:
        target = batch["label"].float()
        return nn.functional.binary_cross_entropy_with_logits(self.logits(batch), target)


def numpy_batch(rng, size: int = 48) -> dict[str, np.ndarray]:
    return {
        "item": rng.integers(0, 10**12, (size, 2)),
        "user": rng.integers(0, 10**6, (size, 3)),
        "price": rng.random((size, 1), np.float32),
        "label": rng.integers(0, 2, size),
    }


def as_torch(batch: dict) -> dict:
    return {k: torch.from_numpy(v) for k, v in batch.items()}


def test_multi_hash_features_export_and_score_as_the_trainer_evaluates(tmp_path):
    rng = np.random.default_rng(0)
    train = [numpy_batch(rng) for _ in range(6)]
    model = CompositionalModel()
    trainer = Trainer(
        model,
        TrainingArguments(output_dir=str(tmp_path / "run"), log_steps=1000),
        dense_optimizers=(torch.optim.Adam(model.parameters(), lr=1e-2), None),
        sparse_optimizer=SparseAdamW(filter_out_sparse_param(model), lr=1e-2),
    )
    trainer.prepare_training()
    for batch in train[:3]:
        trainer.run_step(as_torch(batch))
    base = export_model(model, tmp_path / "base", as_torch(train[0]), step=3)
    for batch in train[3:]:
        trainer.run_step(as_torch(batch))
    delta = export_model(model, tmp_path / "delta", as_torch(train[0]), step=6, since=base)

    ops = [op["op"] for f in base.manifest["features"]["features"] for op in f["ops"]]
    assert ops == ["select", "multi_hash", "select", "mod"]
    assert sorted(base.tables) == ["item_0", "item_1", "item_2", "user"]
    for k, buckets in enumerate(BUCKETS):  # each hash's table holds ids of its own id space
        ids = delta.state()[f"item_{k}"].ids
        assert 0 < ids.size <= buckets and ids.max() < buckets

    predictor = Predictor(base, deltas=[delta])
    seen = train[1] | {"item": train[1]["item"][::-1].copy()}  # known ids, other rows
    for raw in (numpy_batch(np.random.default_rng(1)), seen):
        with trainer.evaluation():
            expected = model.logits(as_torch(raw)).numpy()
        np.testing.assert_array_equal(predictor.predict(raw), expected)

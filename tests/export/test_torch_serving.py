"""Torch backend: a DeepFM trained by the Trainer, exported (base + delta), scores in the
Predictor what the trainer's evaluation computes on the same rows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from examples.deepfm.model import DeepFM
from recis.backends.torch.export import export_model
from recis.framework.trainer import Trainer, TrainingArguments
from recis.io import OrcDataset
from recis.nn import filter_out_sparse_param
from recis.optim import SparseAdamW
from recis.serving import Predictor
from recis.tools.synthetic import declare_columns, write_dataset

BATCH = 64


def batches(path, output: str) -> list[dict]:
    data = OrcDataset(BATCH, output=output, transform_fn=[lambda tables: tables[0]])
    data.add_path(str(path))
    declare_columns(data)
    return list(data)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_dataset(str(root / "train"), rows=640, files=1, seed=1)
    write_dataset(str(root / "eval"), rows=192, files=1, seed=2)
    return {
        "train": batches(root / "train", "torch"),
        "eval_torch": batches(root / "eval", "torch"),
        "eval_numpy": batches(root / "eval", "numpy"),
    }


def trained(tmp_path, data, steps):
    torch.manual_seed(0)
    model = DeepFM(dim=4, hidden=(16, 8))
    trainer = Trainer(
        model,
        TrainingArguments(output_dir=str(tmp_path / "run"), log_steps=1000),
        dense_optimizers=(torch.optim.AdamW(model.parameters(), lr=1e-2), None),
        sparse_optimizer=SparseAdamW(filter_out_sparse_param(model), lr=1e-2),
    )
    trainer.prepare_training()
    return model, trainer


def evaluation_scores(model, trainer, batches) -> list[np.ndarray]:
    with trainer.evaluation():
        return [model.logits(batch).numpy() for batch in batches]


def test_predictor_scores_equal_the_trainers_evaluation_after_base_and_delta(tmp_path, data):
    model, trainer = trained(tmp_path, data, 0)
    for batch in data["train"][:5]:
        trainer.run_step(batch)
    base = export_model(model, tmp_path / "base", data["train"][0], step=5)
    for batch in data["train"][5:]:
        trainer.run_step(batch)
    delta = export_model(model, tmp_path / "delta", data["train"][0], step=10, since=base)
    full = export_model(model, tmp_path / "full", data["train"][0], step=10)
    assert delta.manifest["dense"]["inputs"] == sorted(f"I{i}" for i in range(1, 14))
    assert sum(t["rows"] for t in delta.tables.values()) < sum(
        t["rows"] for t in full.tables.values()
    )

    expected = evaluation_scores(model, trainer, data["eval_torch"])
    predictor = Predictor(base, deltas=[delta])
    assert predictor.step == 10
    scores = [predictor.predict(batch) for batch in data["eval_numpy"]]
    for got, want in zip(scores, expected, strict=True):
        np.testing.assert_array_equal(got, want)
    from_full = [Predictor(full).predict(batch) for batch in data["eval_numpy"][:1]]
    np.testing.assert_array_equal(from_full[0], scores[0])

    # the evaluation rows hold ids never seen in training: they read as zeros
    unseen = 0
    for table in predictor.embedder.tables.values():
        for tag, child in enumerate(table.children):
            column = data["eval_numpy"][0][child.rsplit("_", 1)[0]].values
            unseen += int((table.find(column, np.full(column.size, tag, np.int8)) < 0).sum())
    assert unseen > 0


@pytest.mark.parametrize(
    ("dtype", "tolerance"), [("bfloat16", 0.05), ("float16", 0.01), ("int8", 0.05)]
)
def test_smaller_dtypes_score_close_to_float32(tmp_path, data, dtype, tolerance):
    model, trainer = trained(tmp_path, data, 0)
    for batch in data["train"][:4]:
        trainer.run_step(batch)
    exact = Predictor(export_model(model, tmp_path / "f32", data["train"][0]))
    small = export_model(model, tmp_path / dtype, data["train"][0], dtype=dtype)
    stored = {
        b.dtype: sum(r.values.nbytes for r in b.rows().values()) for b in (small, exact.bundle)
    }
    assert stored[dtype] <= (0.25 if dtype == "int8" else 0.5) * stored["float32"]
    got = Predictor(small).predict(data["eval_numpy"][0])
    want = exact.predict(data["eval_numpy"][0])
    np.testing.assert_allclose(got, want, atol=tolerance)
    assert not np.array_equal(got, want)


def test_a_delta_out_of_order_is_refused(tmp_path, data):
    model, trainer = trained(tmp_path, data, 0)
    trainer.run_step(data["train"][0])
    base = export_model(model, tmp_path / "base", data["train"][0])
    trainer.run_step(data["train"][1])
    first = export_model(model, tmp_path / "d1", data["train"][0], since=base)
    trainer.run_step(data["train"][2])
    second = export_model(model, tmp_path / "d2", data["train"][0], since=first)
    with pytest.raises(Exception, match="does not follow"):
        Predictor(base, deltas=[second])

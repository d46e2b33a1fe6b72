"""Training on data without a single batch says so and writes no checkpoint of step 0."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.orc as orc
import pytest
from trainer_helpers import build, dataset

from recis.backends.torch.trainer import Trainer, TrainingArguments


def test_empty_files_warn_and_write_no_checkpoint(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    schema = {
        "label": pa.float64(),
        "I1": pa.float64(),
        **{c: pa.list_(pa.int64()) for c in ("C1", "C2", "C3")},
    }
    for i in range(2):
        orc.write_table(
            pa.table({k: pa.array([], t) for k, t in schema.items()}), data / f"e{i}.orc"
        )
    model, dense, sparse = build()
    args = TrainingArguments(output_dir=str(tmp_path / "run"), train_steps=5, log_steps=100)
    trainer = Trainer(
        model, args, dataset(str(data)), dense_optimizers=(dense, None), sparse_optimizer=sparse
    )
    with pytest.warns(UserWarning, match=r"yielded no batch.*0 of 5 steps"):
        trainer.train()
    assert trainer.global_step == 0
    assert not (tmp_path / "run" / "ckpt_0").exists()

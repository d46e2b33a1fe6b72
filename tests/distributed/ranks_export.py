"""Rank side of the sharded export test: a DeepFM trained on two ranks (tables sharded, dense
data-parallel) exports a base and a delta collectively, then evaluates."""

from __future__ import annotations

import torch

from examples.deepfm.model import DeepFM
from recis.backends.torch.export import export_model, start_export_model
from recis.framework.trainer import Trainer, TrainingArguments
from recis.io import OrcDataset
from recis.nn import filter_out_sparse_param
from recis.optim import SparseAdamW
from recis.tools.synthetic import declare_columns

BATCH = 32


def batches(path: str, output: str) -> list[dict]:
    data = OrcDataset(BATCH, output=output, transform_fn=[lambda tables: tables[0]])
    data.add_path(path)
    declare_columns(data)
    return list(data)


def export_and_evaluate(rank: int, world_size: int, root: str) -> dict:
    """Train 3 steps, export ``base``; 3 more, export ``delta`` (in the background while a
    step runs); return the evaluation scores of ``eval`` and this rank's table sizes."""
    train = batches(f"{root}/train", "torch")[rank::world_size]
    torch.manual_seed(0)
    model = DeepFM(dim=4, hidden=(16, 8))
    trainer = Trainer(
        model,
        TrainingArguments(output_dir=f"{root}/run", log_steps=1000),
        dense_optimizers=(torch.optim.AdamW(model.parameters(), lr=1e-2), None),
        sparse_optimizer=SparseAdamW(filter_out_sparse_param(model), lr=1e-2),
    )
    trainer.prepare_training()
    for batch in train[:3]:
        trainer.run_step(batch)
    base = export_model(model, f"{root}/base", train[0], step=3)
    for batch in train[3:6]:
        trainer.run_step(batch)
    with trainer.evaluation():
        scores = [model.logits(b).numpy() for b in batches(f"{root}/eval", "torch")]
    delta = start_export_model(model, f"{root}/delta", train[0], step=6, since=base)
    rows = sum(len(t) for t in model.embeddings.embedder.tables.values())
    trainer.run_step(train[6])  # while rank 0 writes the delta
    written = delta.result(timeout=120)
    return {"scores": scores, "wrote": [base is not None, written is not None], "rows": rows}

"""Rank side of the sharded-training tests: a small two-table model trained on global batches,
each rank taking its slice of every batch."""

from __future__ import annotations

import torch
from global_batches import GLOBAL_BATCH, global_batch
from global_batches import options as shared_options
from torch import nn

from recis.nn import EmbeddingEngine, EmbeddingOption
from recis.optim import SparseAdamW

STEPS = 4


def options(grad_reduce_by: str = "worker", option=EmbeddingOption) -> dict:
    """:func:`global_batches.options` with torch's ``EmbeddingOption`` by default."""
    return shared_options(grad_reduce_by, option)


class Model(nn.Module):
    def __init__(self, grad_reduce_by: str = "worker") -> None:
        super().__init__()
        self.embedding = EmbeddingEngine(options(grad_reduce_by))
        torch.manual_seed(0)
        self.dense = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 1))

    def forward(self, batch: dict) -> torch.Tensor:
        out = self.embedding(batch)
        x = torch.cat([out["user"], out["item"], out["tag"]], dim=1)
        logits = self.dense(x).squeeze(1)
        return nn.functional.binary_cross_entropy_with_logits(logits, out["label"])


def rank_slice(batch: dict, rank: int, world_size: int) -> dict[str, torch.Tensor]:
    size = GLOBAL_BATCH // world_size
    return {k: torch.from_numpy(v[rank * size : (rank + 1) * size]) for k, v in batch.items()}


def train_both(rank: int, world_size: int) -> dict:
    """:func:`train` with each way of reducing an id's gradients."""
    return {mode: train(rank, world_size, mode) for mode in ("worker", "id")}


def train(rank: int, world_size: int, grad_reduce_by: str = "worker") -> dict:
    """Train STEPS steps; return this rank's tables (by id) and the dense parameters."""
    model = Model(grad_reduce_by)
    dense = model.dense
    if world_size > 1:
        model.dense = nn.parallel.DistributedDataParallel(dense)
    sparse = SparseAdamW(
        {t.name: t for t in model.embedding.tables.values()}, lr=0.05, weight_decay=0.01
    )
    optimizer = torch.optim.Adam(dense.parameters(), lr=0.01)
    for step in range(STEPS):
        loss = model(rank_slice(global_batch(step), rank, world_size))
        loss.backward()
        optimizer.step()
        sparse.step()
        optimizer.zero_grad()
        sparse.zero_grad()
    tables = {t.name: t.table.state_dict() for t in model.embedding.tables.values()}
    params = {k: v.detach().numpy().copy() for k, v in dense.state_dict().items()}
    return {"tables": tables, "dense": params, "steps": sparse.table_steps}

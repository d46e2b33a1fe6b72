"""Rank side of the sharded-training tests: a small two-table model trained on global batches,
each rank taking its slice of every batch."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from recis.core.initializers import NormalInitializer
from recis.nn import EmbeddingEngine, EmbeddingOption
from recis.optim import SparseAdamW

GLOBAL_BATCH = 48
STEPS = 4


def options(grad_reduce_by: str = "worker", option=EmbeddingOption) -> dict:
    """``user`` and ``item`` share one physical table (same dim), ``tag`` has its own; ``option``
    is the front end's ``EmbeddingOption`` (torch's by default)."""
    init = NormalInitializer(std=0.1)
    return {
        "user": option(embedding_dim=4, shared_name="user", initializer=init,
                       grad_reduce_by=grad_reduce_by),
        "item": option(embedding_dim=4, shared_name="item", initializer=init,
                       combiner="mean", grad_reduce_by=grad_reduce_by),
        "tag": option(embedding_dim=8, shared_name="tag", initializer=init,
                      combiner="sum", grad_reduce_by=grad_reduce_by),
    }  # fmt: skip


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


def global_batch(step: int) -> dict[str, np.ndarray]:
    """Ids with many repeats within and across ranks' slices; extreme ids included. At step 1
    every sample has the same tag, so one rank alone updates the tag table."""
    rng = np.random.default_rng(step)
    user = rng.integers(0, 40, (GLOBAL_BATCH, 1))
    user[0, 0] = np.iinfo(np.int64).min
    tag = rng.integers(0, 2**62, (GLOBAL_BATCH, 2)) % 25 * (2**58)
    if step == 1:
        tag[:] = 3 * 2**58
    return {
        "user": user,
        "item": rng.integers(-30, 30, (GLOBAL_BATCH, 3)),
        "tag": tag,
        "label": rng.integers(0, 2, GLOBAL_BATCH).astype(np.float32),
    }


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

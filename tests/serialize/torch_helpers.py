"""A small model with merged and plain hash tables, a resumable data source, and a training loop
that draws from every random generator a checkpoint must restore."""

from __future__ import annotations

import random

import numpy as np
import torch
from torch import nn

from recis.backends.torch.checkpoint import CheckpointManager
from recis.backends.torch.initializers import NormalInitializer
from recis.nn import HashTable, filter_out_sparse_param
from recis.nn.hashtable_hook import AdmitHook, FilterHook
from recis.optim import SparseAdamW

FEATURES = ("user", "item", "query")


def _table(name, children=None, dtype=torch.bfloat16, storage=None):
    return HashTable(
        [-1, 4],
        block_size=16,
        dtype=dtype,
        coalesced=children is not None,
        children=children,
        initializer=NormalInitializer(std=0.1),
        name=name,
        filter_hook=FilterHook("LRU", {"max_size": 70}),
        admit_hook=AdmitHook("Frequency", {"threshold": 2}),
        storage=storage,
    )


class Model(nn.Module):
    """Features ``user`` and ``item`` share one bfloat16 table (``merged``) or have one each;
    ``query`` has a float32 table; every table has the storage tiers ``storage`` (None: all in
    RAM)."""

    def __init__(self, merged: bool = True, storage=None) -> None:
        super().__init__()
        if merged:
            self.shared = _table("user+1", ["user", "item"], storage=storage)
            self.where = {"user": ("shared", 0), "item": ("shared", 1)}
        else:
            self.user, self.item = _table("user", storage=storage), _table("item", storage=storage)
            self.where = {"user": ("user", None), "item": ("item", None)}
        self.query = HashTable(
            [-1, 4], name="query", initializer=NormalInitializer(std=0.1), storage=storage
        )
        self.where["query"] = ("query", None)
        self.dropout = nn.Dropout(0.25)
        self.fc = nn.Linear(4 * len(FEATURES), 1)

    def forward(self, batch: dict) -> torch.Tensor:
        pooled = []
        for feature in FEATURES:
            module, tag = self.where[feature]
            pooled.append(getattr(self, module)(batch[feature], tag).sum(1))
        logits = self.fc(self.dropout(torch.cat(pooled, 1))).squeeze(1)
        return nn.functional.binary_cross_entropy_with_logits(logits, batch["label"])


class Batches:
    """Batch ``n`` depends on ``n`` only; the position is the state, as in the IO datasets."""

    def __init__(self) -> None:
        self.position = 0

    def next(self) -> dict:
        rng = np.random.default_rng(self.position)
        self.position += 1
        batch = {f: torch.from_numpy(rng.integers(0, 50, (8, 3))) for f in FEATURES}
        return batch | {"label": torch.from_numpy(rng.integers(0, 2, 8).astype(np.float32))}

    def state_dict(self) -> dict:
        return {"position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.position = state["position"]


class Run:
    """Model, optimizers, LR schedule, data and checkpoint manager of one training run."""

    def __init__(self, output_dir, merged: bool = True, storage=None, **manager_options) -> None:
        torch.manual_seed(0)
        self.model = Model(merged, storage)
        self.dense = torch.optim.Adam(self.model.parameters(), lr=0.02)
        self.schedule = torch.optim.lr_scheduler.StepLR(self.dense, step_size=3, gamma=0.5)
        self.sparse = SparseAdamW(filter_out_sparse_param(self.model), lr=0.02)
        self.data = Batches()
        self.losses: list[float] = []
        options = {"save_steps": 4, "max_to_keep": 2} | manager_options
        self.manager = CheckpointManager(
            output_dir, self.model, self.dense, self.schedule, self.sparse, self.data, **options
        )

    def train_until(self, step: int) -> None:
        while self.manager.global_step < step:
            self.dense.zero_grad()
            self.sparse.zero_grad()
            noise = 1 + 0.01 * (np.random.rand() + random.random())  # noqa: NPY002
            loss = self.model(self.data.next()) * noise
            loss.backward()
            self.losses.append(loss.item())
            self.dense.step()
            self.sparse.step()
            self.schedule.step()
            self.manager.step()

    def tables(self) -> dict[str, HashTable]:
        return filter_out_sparse_param(self.model)


def scramble_random_generators() -> None:
    random.seed(99)
    np.random.seed(99)  # noqa: NPY002
    torch.manual_seed(99)


def next_random_numbers() -> tuple:
    return random.random(), np.random.rand(), torch.rand(1).item()  # noqa: NPY002

"""Rank side of the Trainer tests: uneven data per rank, and a rank that fails."""

from __future__ import annotations

import os
import time

import numpy as np
import ranks_training
import torch

from recis.framework import Trainer, TrainingArguments
from recis.optim import SparseAdamW


class Failing(ranks_training.Model):
    """Raises on ``rank`` at the ``at``-th forward; ``stall`` sleeps instead of raising."""

    def __init__(self, rank: int, at: int, stall: float = 0.0) -> None:
        super().__init__()
        self.rank, self.at, self.stall, self.calls = rank, at, stall, 0

    def forward(self, batch):
        self.calls += 1
        if torch.distributed.get_rank() == self.rank and self.calls == self.at:
            if self.stall:
                time.sleep(self.stall)
            else:
                raise ValueError("bad batch on purpose")
        return super().forward(batch)


def batches(rank: int, world_size: int, count: int) -> list[dict]:
    return [ranks_training.rank_slice(ranks_training.global_batch(s), rank, world_size)
            for s in range(count)]  # fmt: skip


def trainer(model, rank: int, world_size: int, count: int, output_dir: str) -> Trainer:
    tables = {t.name: t for t in model.embedding.tables.values()}
    args = TrainingArguments(output_dir=output_dir, train_epoch=1, log_steps=1, save_steps=0)
    dense = torch.optim.Adam(model.dense.parameters(), lr=0.01)
    data = batches(rank, world_size, count)
    return Trainer(
        model, args, data, data, dense_optimizers=(dense, None),
        sparse_optimizer=SparseAdamW(tables, lr=0.05),
    )  # fmt: skip


def uneven(rank: int, world_size: int, output_dir: str) -> dict:
    """Rank r has 3 + r batches: every rank stops after 3 steps, with the mean loss logged."""
    model = ranks_training.Model()
    run = trainer(model, rank, world_size, 3 + rank, output_dir)
    losses = []
    run.add_hook(type("Losses", (), {
        "__getattr__": lambda self, name: lambda *a: None,
        "after_step": lambda self, metrics, step: losses.append(metrics["loss"]),
    })())  # fmt: skip
    run.train()
    evaluation = run.evaluate()
    return {"step": run.global_step, "losses": losses, "eval_steps": evaluation["steps"],
            "eval_loss": evaluation["loss"]}  # fmt: skip


def failing(rank: int, world_size: int, output_dir: str, stall: float = 0.0) -> None:
    run = trainer(Failing(1, 2, stall), rank, world_size, 6, output_dir)
    run.train()


def local_loss(rank: int, world_size: int, steps: int) -> list[float]:
    """Loss of each rank's own slice under the untrained model (the logged mean's parts); a
    training-mode forward, so that new ids read their initial values."""
    model = ranks_training.Model()
    return [float(model(b).detach()) for b in batches(rank, world_size, steps)]


def mean(values) -> float:
    return float(np.mean(values))


class Signalled(ranks_training.Model):
    """Rank 1 sends itself ``signal`` (e.g. SIGSTOP: frozen; SIGKILL: dead) at its second
    forward."""

    def __init__(self, signal: int, output_dir: str) -> None:
        super().__init__()
        self.signal, self.output_dir, self.calls = signal, output_dir, 0

    def forward(self, batch):
        self.calls += 1
        if torch.distributed.get_rank() == 1 and self.calls == 2:
            with open(os.path.join(self.output_dir, "signalled-at"), "w") as out:
                out.write(str(time.time()))
            os.kill(os.getpid(), self.signal)
        return super().forward(batch)


def signalled(rank: int, world_size: int, output_dir: str, signal: int) -> None:
    trainer(Signalled(signal, output_dir), rank, world_size, 6, output_dir).train()

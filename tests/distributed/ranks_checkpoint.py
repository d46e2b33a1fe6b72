"""Rank side of the checkpoint re-sharding tests: sharded hash tables trained a few steps with a
sparse AdamW, saved and loaded on any number of ranks; and a world of threads standing in for
ranks where the engine's checkpoint code is tested without processes."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import ml_dtypes
import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from recis.backends.torch import TorchCommunicator
from recis.backends.torch.initializers import NormalInitializer
from recis.backends.torch.trainer import Trainer, TrainingArguments
from recis.core.optim import Adam
from recis.core.optim.updater import SparseUpdater
from recis.core.policies import CapacityEviction, FrequencyAdmission, GlobalStepEviction
from recis.core.table import EmbeddingTable
from recis.distributed.communicator import Communicator
from recis.distributed.sharding import owners
from recis.nn import HashTable, filter_out_sparse_param
from recis.nn.hashtable_hook import AdmitHook, FilterHook
from recis.optim import SparseAdamW
from recis.serialize import Loader, Saver

GLOBAL_BATCH = 48
STEPS = 3


class Tables(nn.Module):
    """A table with frequency admission and LRU eviction, and a merged one (two logical tables)
    with global-step eviction; the loss is a fixed function of the looked-up rows."""

    def __init__(self) -> None:
        super().__init__()
        init = NormalInitializer(std=0.1)
        self.user = HashTable(
            [-1, 4], name="user", initializer=init, seed=3,
            admit_hook=AdmitHook("Frequency", {"threshold": 2}),
            filter_hook=FilterHook("LRU", {"max_size": 32}),
        )  # fmt: skip
        self.merged = HashTable(
            [-1, 4], name="item+tag", initializer=init, seed=3, coalesced=True,
            children=["item", "tag"],
            filter_hook=FilterHook("GlobalStepFilter", {"filter_step": 9}),
        )  # fmt: skip

    def forward(self, batch: dict) -> torch.Tensor:
        weights = torch.linspace(-1.0, 1.0, 4)
        users = self.user(batch["user"])
        items = self.merged(batch["item"], tags=batch["tags"])
        return (users**2).sum() + (items * weights).sum()


def optimizer(model: Tables) -> SparseAdamW:
    return SparseAdamW(filter_out_sparse_param(model), lr=0.05, weight_decay=0.01)


def global_batch(step: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(step)
    return {
        "user": rng.integers(0, 100, GLOBAL_BATCH),
        "item": rng.integers(-40, 40, GLOBAL_BATCH),
        "tags": rng.integers(0, 2, GLOBAL_BATCH),
    }


def rank_batch(step: int, rank: int, world_size: int) -> dict:
    size = GLOBAL_BATCH // world_size
    part = {k: v[rank * size : (rank + 1) * size] for k, v in global_batch(step).items()}
    return {"user": torch.from_numpy(part["user"]), "item": torch.from_numpy(part["item"]),
            "tags": part["tags"]}  # fmt: skip


def trained(rank: int, world_size: int) -> tuple[Tables, SparseAdamW]:
    """The tables after STEPS steps over this rank's slices of the global batches."""
    model = Tables()
    sparse = optimizer(model)
    for step in range(STEPS):
        model(rank_batch(step, rank, world_size)).backward()
        sparse.step()
        sparse.zero_grad()
    return model, sparse


def shard_states(model: Tables) -> dict[str, dict[str, np.ndarray]]:
    """This rank's shard of every table, as state dicts."""
    return {
        name: table.table.state_dict() for name, table in filter_out_sparse_param(model).items()
    }


def loaded(path, communicator=None) -> dict[str, dict[str, np.ndarray]]:
    """Fresh tables (with optimizer slots) with the checkpoint ``path`` loaded, on the ranks of
    ``communicator`` (default: this process's)."""
    model = Tables()
    optimizer(model)
    Loader(path, filter_out_sparse_param(model), communicator=communicator).load()
    return shard_states(model)


def train_save_load(rank: int, world_size: int, save_path: str, load_path: str) -> dict:
    """Train and save on these ranks; load what was saved, and ``load_path``, into fresh tables."""
    model, _ = trained(rank, world_size)
    Saver(rank, world_size, path=save_path, hashtables=filter_out_sparse_param(model)).save()
    return {
        "saved": shard_states(model),
        "reloaded": loaded(save_path),
        "loaded": loaded(load_path),
    }


def save_load_and_load_on_two(rank: int, world_size: int, save_path, load_path) -> dict:
    """:func:`train_save_load`, then ranks 0 and 1 load what was saved as a world of two
    (a process group of their own)."""
    result = train_save_load(rank, world_size, save_path, load_path)
    pair = dist.new_group([0, 1])
    result["on_two"] = loaded(save_path, TorchCommunicator(pair)) if rank < 2 else None
    return result


class RankData:
    """This rank's slices of the global batches, with a resumable position."""

    def __init__(self, rank: int, world_size: int) -> None:
        self.rank, self.world_size, self.position = rank, world_size, 0

    def __iter__(self):
        while self.position < 100:
            batch = rank_batch(self.position, self.rank, self.world_size)
            self.position += 1
            yield batch

    def state_dict(self) -> dict:
        return {"position": self.position, "rank": self.rank}

    def load_state_dict(self, state: dict) -> None:
        self.position = state["position"]


def trainer(rank: int, world_size: int, output_dir: str, data: bool = True):
    model = Tables()
    sparse = optimizer(model)
    args = TrainingArguments(output_dir=output_dir, train_steps=STEPS, save_steps=STEPS)
    dataset = RankData(rank, world_size) if data else None
    return Trainer(model, args, train_dataset=dataset, sparse_optimizer=sparse), model, sparse


def trainer_round_trip(rank: int, world_size: int, output_dir: str) -> dict:
    """Train and save through the Trainer; restore it into a fresh Trainer."""
    first, model, sparse = trainer(rank, world_size, output_dir)
    first.train()
    again, fresh, fresh_sparse = trainer(rank, world_size, output_dir)
    again.restore()
    return {
        "saved": shard_states(model),
        "restored": shard_states(fresh),
        "optimizer": (sparse.state_dict(), fresh_sparse.state_dict()),
        "data": (first.train_dataset.state_dict(), again.train_dataset.state_dict()),
        "global_step": again.global_step,
    }


def save_load_and_train(rank: int, world_size: int, save_path, load_path, output_dir) -> dict:
    """:func:`train_save_load`, then :func:`trainer_round_trip`, in one launch."""
    return train_save_load(rank, world_size, save_path, load_path) | {
        "trainer": trainer_round_trip(rank, world_size, output_dir)
    }


def core_shard(rank: int, world_size: int, steps: int = 4) -> dict[str, EmbeddingTable]:
    """This rank's shard of two engine tables — a bfloat16 one merging two logical tables, with
    frequency admission and LRU eviction, and a float32 one with global-step eviction — after
    ``steps`` Adam steps on the ids it owns."""
    tables = {
        "user+item": EmbeddingTable(
            "user+item", 4, NormalInitializer(std=0.1), seed=5, dtype=ml_dtypes.bfloat16,
            block_rows=16, children=["user", "item"], admission=FrequencyAdmission(2),
            eviction=CapacityEviction(max_size=40),
        ),
        "query": EmbeddingTable(
            "query", 4, NormalInitializer(std=0.1), seed=5, block_rows=16,
            eviction=GlobalStepEviction(filter_step=3),
        ),
    }  # fmt: skip
    updater = SparseUpdater(Adam(), tables.values())
    for step in range(steps):
        rng = np.random.default_rng(step)
        for table in tables.values():
            for tag, child in enumerate(table.children):
                ids = np.unique(rng.integers(-50, 50, 30))
                ids = ids[owners(ids, None, [child], world_size) == rank]
                rows = table.lookup(ids, tag, np.full(ids.size, 1 + step % 2)).rows
                grads = np.random.default_rng([step, rank]).standard_normal((rows.size, 4))
                updater.accumulate(table, rows, grads.astype(np.float32))
            if isinstance(table.eviction, GlobalStepEviction):
                table.eviction.advance()
        updater.step(lr=0.05)
    return tables


class ThreadWorld:
    """``size`` ranks as threads of one process: their collectives meet at a barrier."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.barrier = threading.Barrier(size, timeout=20)
        self.slots: list = [None] * size

    def communicators(self) -> list[ThreadRank]:
        return [ThreadRank(self, rank) for rank in range(self.size)]

    def run(self, function, *args) -> list:
        """``function(communicator, *args)`` on every rank; the ranks' results or exceptions."""
        with ThreadPoolExecutor(self.size) as pool:
            futures = [pool.submit(function, c, *args) for c in self.communicators()]
            return [f.exception() or f.result() for f in futures]


class ThreadRank(Communicator):
    """One thread-rank of a :class:`ThreadWorld` (object collectives only)."""

    def __init__(self, world: ThreadWorld, rank: int) -> None:
        self.world, self.rank, self.world_size = world, rank, world.size

    def all_gather_object(self, value, what: str) -> list:
        self.world.slots[self.rank] = value
        self.world.barrier.wait()
        gathered = list(self.world.slots)
        self.world.barrier.wait()
        return gathered

    def all_reduce(self, array, op, what):
        reduce = {"sum": np.sum, "min": np.min, "max": np.max}[op]
        return reduce(np.stack(self.all_gather_object(np.asarray(array), what)), axis=0)

    def all_to_all(self, send, send_counts, recv_counts, what):
        raise NotImplementedError("checkpoints exchange no rows")

    def report_failure(self, error: BaseException) -> None:
        """The other threads see the failure through their results."""

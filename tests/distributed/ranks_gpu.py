"""Rank side of the sharded GPU-table tests, on the host stand-in for CuPy: the engine's
``Embedder`` with ``device="cuda"`` tables trained with a sparse Adam on each rank's slice of
global batches, its shards saved and loaded through the sharded checkpoint, and a world whose
ranks hold their tables on different kinds of device."""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # cupy_standin, host_cuda

import cupy_standin

cupy_standin.install()

import cupy  # noqa: E402
import numpy as np  # noqa: E402

from recis.checkpoint import Checkpoint, checkpoint_writer, load_tables, plan_load  # noqa: E402
from recis.core.initializers import NormalInitializer  # noqa: E402
from recis.core.optim import Adam  # noqa: E402
from recis.distributed.communicator import CollectiveError  # noqa: E402
from recis.distributed.world import default_communicator  # noqa: E402
from recis.embedding.embedder import Embedder  # noqa: E402
from recis.embedding.option import EmbeddingOption  # noqa: E402
from recis.embedding.sparse_optimizer import SparseOptimizerCore  # noqa: E402

GLOBAL_BATCH = 24
STEPS = 3


def options(device: str = "cuda", grad_reduce_by: str = "worker") -> dict:
    """``user`` and ``item`` share one physical table (same dim), ``tag`` has its own."""
    init = NormalInitializer(std=0.1)
    common = {"initializer": init, "device": device, "grad_reduce_by": grad_reduce_by}
    return {
        "user": EmbeddingOption(embedding_dim=4, shared_name="user", **common),
        "item": EmbeddingOption(embedding_dim=4, shared_name="item", combiner="mean", **common),
        "tag": EmbeddingOption(embedding_dim=8, shared_name="tag", **common),
    }


def global_batch(step: int) -> dict[str, np.ndarray]:
    """Ids repeated within and across ranks' slices, the extreme int64 id included."""
    rng = np.random.default_rng(step)
    user = rng.integers(0, 30, (GLOBAL_BATCH, 1))
    user[0, 0] = np.iinfo(np.int64).min
    return {
        "user": user,
        "item": rng.integers(-20, 20, (GLOBAL_BATCH, 3)),
        "tag": rng.integers(0, 12, (GLOBAL_BATCH, 2)) * 2**58,
    }


def rank_slice(batch: dict, rank: int, world_size: int, xp) -> dict:
    size = GLOBAL_BATCH // world_size
    return {k: xp.asarray(v[rank * size : (rank + 1) * size]) for k, v in batch.items()}


def train(rank: int, world_size: int, grad_reduce_by: str = "worker", device: str = "cuda"):
    """The embedder after STEPS steps of a loss whose gradient w.r.t. each activation ``a`` is
    ``(a / 2 + 0.1)`` per sample of the mean over the global batch; rank and step checks."""
    embedder = Embedder(options(device, grad_reduce_by))
    sparse = SparseOptimizerCore(
        Adam(), embedder.tables.values(), shards=lambda: embedder.shards or []
    )
    xp = cupy if device == "cuda" else np
    on_device = []
    for step in range(STEPS):
        batch = rank_slice(global_batch(step), rank, world_size, xp)
        out, context = embedder.lookup(batch)
        on_device.append(all(isinstance(a, xp.ndarray) for a in out.values()))
        local = GLOBAL_BATCH // world_size
        embedder.apply_gradients(context, {f: (a / 2 + 0.1) / local for f, a in out.items()})
        sparse.step(lr=0.05)
        sparse.zero_grad()
    return embedder, sparse, all(on_device)


def states(embedder: Embedder) -> dict:
    return {name: table.state_dict() for name, table in embedder.tables.items()}


def train_both(rank: int, world_size: int) -> dict:
    """:func:`train` with each way of reducing an id's gradients: this rank's tables (NumPy
    state dicts) and whether every activation stayed a device array."""
    results = {}
    for mode in ("worker", "id"):
        embedder, _, on_device = train(rank, world_size, mode)
        results[mode] = {"tables": states(embedder), "on_device": on_device}
    return results


def mixed_world(rank: int, world_size: int) -> dict:
    """Rank 1 holds its tables on the CPU, the others on the GPU: each rank's lookup error
    and how long it took to come."""
    device = "cpu" if rank == 1 else "cuda"
    xp = np if device == "cpu" else cupy
    embedder = Embedder(options(device))
    start = time.monotonic()
    try:
        embedder.lookup(rank_slice(global_batch(0), rank, world_size, xp))
    except CollectiveError as error:
        return {"error": str(error), "seconds": time.monotonic() - start}
    return {"error": None, "seconds": time.monotonic() - start}


def save(embedder: Embedder, path: str, comm) -> None:
    with checkpoint_writer(path, comm) as writer:
        writer.write_tables(embedder.tables)
        writer.commit()


def loaded(path: str, device: str = "cuda") -> dict:
    """Fresh tables (with Adam slots) on ``device`` with the checkpoint ``path`` loaded, on the
    ranks of this process's world."""
    embedder = Embedder(options(device))
    SparseOptimizerCore(Adam(), embedder.tables.values())
    checkpoint = Checkpoint(path)
    tables = embedder.tables
    load_tables(
        checkpoint, tables, plan_load(checkpoint, tables), communicator=default_communicator()
    )
    return states(embedder)


def on_two(rank: int, world_size: int, path: str) -> dict:
    """Train on two ranks (both ways), save the "worker" tables to ``path``; the mixed world."""
    results = train_both(rank, world_size)
    embedder, _, _ = train(rank, world_size)
    save(embedder, path, default_communicator())
    return results | {"saved": states(embedder), "mixed": mixed_world(rank, world_size)}


def on_four(rank: int, world_size: int, path: str) -> dict:
    """Train on four ranks (both ways) and load the checkpoint saved by two."""
    return train_both(rank, world_size) | {"loaded": loaded(path)}

"""Rank side of the tests on JAX processes: every collective of the communicator, with values
each rank can predict, and the JAX sharded-training checks (:mod:`ranks_jax`)."""

from __future__ import annotations

import jax
import numpy as np
import ranks_jax

from recis.backends.jax import DataParallel
from recis.distributed.world import default_communicator


def two_process_checks(rank: int, world_size: int, output_dir: str) -> dict:
    """Everything the tests run on two JAX processes, in one launch; ``mesh``: training with
    the dense step split over this process's devices too."""
    return {
        "collectives": collectives(rank, world_size),
        "mesh": ranks_jax.train(rank, world_size, "worker", mesh=DataParallel()),
        "local_devices": len(jax.local_devices()),
        **ranks_jax.two_rank_checks(rank, world_size, output_dir),
    }


def collectives(rank: int, world_size: int) -> dict:
    comm = default_communicator()
    # rank r sends (r + 1) * (d + 1) rows to rank d; row values encode (sender, destination, i)
    send_counts = np.array([(rank + 1) * (d + 1) for d in range(world_size)])
    recv_counts = np.array([(s + 1) * (rank + 1) for s in range(world_size)])
    rows = [
        [[2**40 * rank + 1000 * d + i, -i] for i in range(count)]
        for d, count in enumerate(send_counts)
    ]
    send = np.array([row for block in rows for row in block], np.int64).reshape(-1, 2)
    received = comm.all_to_all(send, send_counts, recv_counts, "int64 rows").wait()
    floats = comm.all_to_all(send[:, :1].astype(np.float32), send_counts, recv_counts, "f32")
    empty = comm.all_to_all(np.zeros((0, 3), np.float64), np.zeros(world_size, np.int64),
                            np.zeros(world_size, np.int64), "nothing").wait()  # fmt: skip
    return {
        "type": type(comm).__name__,
        "rank": comm.rank,
        "world_size": comm.world_size,
        "received": received,
        "floats": floats.wait(),
        "empty_shape": empty.shape,
        "counts": comm.exchange_counts(np.arange(world_size * 2) + 10 * rank, "counts"),
        "sum_f32": comm.all_reduce(np.array([rank + 0.5, 1.0], np.float32), "sum", "f32 sum"),
        "max_i64": comm.all_reduce(np.array([2**40 + rank]), "max", "i64 max"),
        "min_f64": comm.all_reduce(np.array([[rank - 0.25]]), "min", "f64 min"),
        "objects": comm.all_gather_object({"rank": rank, "pad": "x" * 100 * rank}, "objects"),
        "broadcast": comm.broadcast_object(f"from {rank}", "broadcast", source=1),
    }


def failing_rank(rank: int, world_size: int) -> dict:
    """Rank 1 raises during a training loop; rank 0's next collective fails, naming it."""
    from recis.distributed.communicator import CollectiveError

    comm = default_communicator()
    if rank == 1:
        comm.report_failure(ValueError("bad batch 7"))
        raise ValueError("bad batch 7")
    try:
        comm.all_reduce(np.ones(3, np.float32), "sum", "all-reduce after a failure")
    except CollectiveError as error:
        return {"error": str(error)}
    return {"error": None}

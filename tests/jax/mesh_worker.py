"""Run with several host devices (``--xla_force_host_platform_device_count``): the same model
trained on the same batches by a ``TrainStep`` on one device and by one split over every device
(:class:`~recis.backends.jax.mesh.DataParallel`); prints both runs as JSON."""

from __future__ import annotations

import json

import jax
import numpy as np
import optax
import ranks_jax  # tests/distributed, on PYTHONPATH
from global_batches import global_batch

from recis.backends.jax import DataParallel, Embedder, SparseOptimizer, TrainStep, rules

SIZES = (48, 48, 46, 48)  # 46: padded to a multiple of the devices


def train(mesh: DataParallel | None) -> dict:
    embedder = Embedder(ranks_jax.options("worker"))
    sparse = SparseOptimizer(embedder, rules.AdamW(weight_decay=0.01), 0.05)
    step = TrainStep(
        ranks_jax.loss_fn, ranks_jax.initial_params(), optax.adam(0.01), sparse, [embedder],
        mesh=mesh,
    )  # fmt: skip
    losses, placements = [], set()
    for s, size in enumerate(SIZES):
        batch = {k: v[:size] for k, v in global_batch(s).items()}
        losses.append(float(step(batch).loss))
        placements.add(len(step.params["hidden"].sharding.device_set))
    tables = {
        name: {k: v.tolist() for k, v in table.state_dict().items() if k in ("id", "embedding")}
        for name, table in embedder.tables.items()
    }
    return {
        "devices": sorted(placements),
        "replicated": step.params["hidden"].sharding.is_fully_replicated,
        "losses": losses,
        "dense": {k: np.asarray(v).tolist() for k, v in step.params.items()},
        "tables": tables,
        "compilations": step.trace_count,
    }


if __name__ == "__main__":
    print(json.dumps({"local_devices": len(jax.local_devices()), "single": train(None),
                      "mesh": train(DataParallel())}))  # fmt: skip

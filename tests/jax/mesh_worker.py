"""Run with several host devices (``--xla_force_host_platform_device_count``): the same model
trained on the same batches by a ``TrainStep`` on one device, by one whose dense step is split
over every device (:class:`~recis.backends.jax.mesh.DataParallel`), and by one whose tables are
sharded over the devices too; checkpoints of each loaded by the other; prints it all as JSON."""

from __future__ import annotations

import json
import sys
import tempfile

import jax
import numpy as np
import optax
import ranks_jax  # tests/distributed, on PYTHONPATH
from global_batches import global_batch

from recis.backends.jax import DataParallel, Embedder, SparseOptimizer, TrainStep, rules
from recis.backends.jax.checkpoint import CheckpointManager
from recis.distributed.sharding import owners

SIZES = (48, 48, 46, 48)  # 46: padded to a multiple of the devices


def make_step(dense_mesh: DataParallel | None, table_mesh: DataParallel | None):
    embedder = Embedder(ranks_jax.options("worker"), mesh=table_mesh)
    sparse = SparseOptimizer(embedder, rules.AdamW(weight_decay=0.01), 0.05)
    step = TrainStep(
        ranks_jax.loss_fn, ranks_jax.initial_params(), optax.adam(0.01), sparse, [embedder],
        mesh=dense_mesh,
    )  # fmt: skip
    return step, embedder


def tables_of(embedder: Embedder) -> dict:
    return {
        name: {k: v.tolist() for k, v in table.state_dict().items() if k in ("id", "tag", *FIELDS)}
        for name, table in embedder.tables.items()
    }


FIELDS = ("embedding", "exp_avg", "exp_avg_sq")


def shard_placement(embedder: Embedder) -> dict:
    """Per table, the ids each device's shard holds, and whether each lies where the owner
    rule over the devices puts it."""
    placement = {}
    for name, table in embedder.tables.items():
        if not hasattr(table, "shards"):
            continue
        sizes, placed = [], True
        for device, shard in enumerate(table.shards):
            entries = shard.ids.export()
            sizes.append(int(entries.keys.size))
            owner = owners(entries.keys, entries.tags, shard.children, len(table.shards))
            placed &= bool((owner == device).all())
        placement[name] = {"sizes": sizes, "placed": placed}
    return placement


def train(dense_mesh: DataParallel | None, table_mesh: DataParallel | None, output_dir: str):
    step, embedder = make_step(dense_mesh, table_mesh)
    manager = CheckpointManager(output_dir, step, save_steps=len(SIZES))
    losses, placements = [], set()
    for s, size in enumerate(SIZES):
        batch = {k: v[:size] for k, v in global_batch(s).items()}
        losses.append(float(step(batch).loss))
        placements.add(len(step.params["hidden"].sharding.device_set))
        manager.step()  # saves after the last step
    return {
        "devices": sorted(placements),
        "replicated": step.params["hidden"].sharding.is_fully_replicated,
        "losses": losses,
        "dense": {k: np.asarray(v).tolist() for k, v in step.params.items()},
        "tables": tables_of(embedder),
        "shards": shard_placement(embedder),
        "compilations": step.trace_count,
    }


def restored(output_dir: str, dense_mesh, table_mesh) -> dict:
    """The tables of a fresh step (on ``table_mesh``'s devices) restored from ``output_dir``."""
    step, embedder = make_step(dense_mesh, table_mesh)
    assert CheckpointManager(output_dir, step).restore()
    return {"tables": tables_of(embedder), "shards": shard_placement(embedder)}


def main() -> dict:
    mesh = DataParallel()
    runs, dirs = {}, {}
    for name, meshes in (("single", (None, None)), ("mesh", (mesh, None)),
                         ("sharded", (mesh, mesh))):  # fmt: skip
        dirs[name] = tempfile.mkdtemp()
        runs[name] = train(*meshes, dirs[name])
    runs["sharded_on_one"] = restored(dirs["sharded"], None, None)
    runs["single_on_four"] = restored(dirs["single"], mesh, mesh)
    return {"local_devices": len(jax.local_devices()), **runs}


if __name__ == "__main__":
    json.dump(main(), sys.stdout)
    print()

"""Device work per training step of the DeepFM tables, counted on the host stand-in for CuPy.

The sparse half of a DeepFM step of ``benchmarks/train_gpu.py`` (26 categorical features, each
with an embedding table of dim 16 and a bias table of dim 1: 52 features merged into 2 physical
tables on the GPU, lazy Adam), run through the engine's GPU path with ``tests/cupy_standin``
standing in for CuPy: lookups of one id per feature and row, the combiners' backward for a
gradient of ones, the optimizer step. The stand-in counts every device operation of the measured
step: the engine's kernels (``cuda/*.cu``), CuPy's own work (element-wise operations,
reductions, copies and fills, each one kernel or memset on a GPU) and copies between host and
device; a few warm-up steps come first. The launches per merged table are also given per stage
(lookup with combine, backward, optimizer). On a GPU, ``train_gpu.py`` reports the kernels of a step
of the whole model from the profiler. Prints one JSON object.

    python benchmarks/gpu_launches.py [--batch_size 4096] [--warmup 2]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections import Counter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def install_standin() -> None:
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    import cupy_standin

    cupy_standin.install()


def options():
    from recis.backends.jax import EmbeddingOption
    from recis.core.initializers import TruncNormalInitializer
    from recis.tools.synthetic import CATEGORICAL

    init = TruncNormalInitializer(std=0.01)
    out = {}
    for column in CATEGORICAL:
        for kind, dim in (("emb", 16), ("bias", 1)):
            name = f"{column}_{kind}"
            out[name] = EmbeddingOption(dim, shared_name=name, initializer=init, device="cuda")
    return out


STAGES = ("lookup", "backward", "optimizer")


def step(cupy, embedder, optimizer, batch: dict, grads: dict | None = None, stages=None) -> dict:
    """Lookups, the backward of ``grads`` (the activations' gradients, default ones), the
    optimizer step; returns the gradients. ``stages`` (a dict) gets each stage's device
    operations, counted by the stand-in."""
    counted = stages is not None

    def stage(name: str):
        return cupy.counting() if counted else contextlib.nullcontext()

    with stage("lookup") as lookup:
        out, context = embedder.lookup(batch)
    if grads is None:
        grads = {name: cupy.ones(value.shape, value.dtype) for name, value in out.items()}
    with stage("backward") as backward:
        embedder.apply_gradients(context, grads)
    with stage("optimizer") as update:
        optimizer.step()
    if counted:
        stages.update(zip(STAGES, (lookup, backward, update), strict=True))
    return grads


def measure(batch_size: int, warmup: int) -> dict:
    import cupy
    import numpy as np

    from recis.backends.jax import Embedder
    from recis.backends.jax.optim import SparseOptimizer, rules
    from recis.core.cuda import loader

    embedder = Embedder(options())
    optimizer = SparseOptimizer(embedder, rules.Adam(), learning_rate=0.01)
    rng = np.random.default_rng(0)
    columns = sorted({name.rsplit("_", 1)[0] for name in embedder.options})

    def batch() -> dict:
        ids = {c: rng.zipf(1.2, batch_size).astype(np.int64) for c in columns}
        kinds = ("emb", "bias")
        return {f"{c}_{k}": cupy.asarray(ids[c][:, None]) for c in columns for k in kinds}

    for _ in range(max(warmup, 1)):
        grads = step(cupy, embedder, optimizer, batch())
    inputs = batch()
    stages: dict = {}
    with cupy.counting() as device, loader.counting_launches() as ours:
        step(cupy, embedder, optimizer, inputs, grads, stages)
    merged = len({id(table) for table in embedder.tables.values()})
    launches = {  # kernels and CuPy operations; copies are not launches
        name: sum(t for (kind, _), t in counts.items() if kind != "copy") / merged
        for name, counts in stages.items()
    }
    kinds = Counter()
    for (kind, _), times in device.items():
        kinds[kind] += times
    cupy_ops = Counter({name: t for (kind, name), t in device.items() if kind == "cupy"})
    return {
        "features": len(embedder.options),
        "merged_tables": merged,
        "engine_kernels_per_step": kinds["kernel"],
        "cupy_operations_per_step": kinds["cupy"],
        "host_device_copies_per_step": kinds["copy"],
        "kernels_per_merged_table": (kinds["kernel"] + kinds["cupy"]) / merged,
        "kernels_per_merged_table_by_stage": launches,
        "engine_kernels_by_name": dict(ours.most_common()),
        "cupy_operations_by_name": dict(cupy_ops.most_common()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch_size", type=int, default=4096)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    install_standin()
    report = {
        "benchmark": "gpu_launches_deepfm_tables",
        "device": "host stand-in for CuPy (tests/cupy_standin)",
        "batch_size": args.batch_size,
        **measure(args.batch_size, args.warmup),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    sys.path.insert(0, ROOT)
    main()

"""GPU training throughput of the DeepFM example: dynamic hash tables vs static tables.

One run trains the DeepFM of ``examples/deepfm`` (13 dense + 26 categorical features, an
embedding table of dim 16 and a bias table per feature, MLP 400-400-400, dense AdamW) on one GPU,
on Criteo-shaped synthetic ORC data read by ``OrcDataset(device="cuda")`` (batches packed in
pinned memory and copied on a side stream), batch 65536, in two systems:

- ``recis``: the example's model as it is: ``FeatureEngine`` + ``EmbeddingEngine`` over growable
  hash tables on the GPU (``EmbeddingOption(device="cuda")``) keyed by the raw int64 ids, with
  ``recis.optim.SparseAdam``;
- ``embedding_bag``: the same dense model over static ``nn.EmbeddingBag(vocab, dim, sparse=True)``
  tables, the ids mapped to rows by ``id mod vocab`` on the GPU, with ``torch.optim.SparseAdam``.

Both use lazy (sparse) Adam for the tables. Each system runs in a fresh process. Besides samples/s
(wall clock over the measured steps), every step is split into stages timed with CUDA events on
the training stream (milliseconds per step, their sum is the step): ``io`` (taking the next
batch, including any wait for its copy), ``features`` (the feature engine; the id mod for the
static tables), ``lookup`` (the embedding forward), ``dense`` (tower forward, loss, the whole
backward pass and the dense optimizer step) and ``sparse_update`` (the tables' optimizer). One
more step runs under the torch profiler, which counts its device-to-host copies (the host waits
for each) and its kernels: all of them, the engine's own (``cuda/*.cu``, counted at launch) and
CuPy's (element-wise, reduction, copy and CUB/Thrust kernels), the last two also per merged
table. Prints one JSON object.

    python benchmarks/train_gpu.py [--steps 20] [--warmup 3] [--batch_size 65536]

Needs a CUDA device, a CUDA build of torch and CuPy (``pip install 'recis[cuda]'``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

STAGES = ("io", "features", "lookup", "dense", "sparse_update")
SYSTEMS = ("recis", "embedding_bag")
DIM, HIDDEN, LR, SPARSE_LR = 16, (400, 400, 400), 1e-3, 1e-2


def require_gpu() -> None:
    """Exit with a message (no traceback) unless a CUDA device, torch's CUDA and CuPy are here."""
    try:
        import torch
    except ImportError:
        sys.exit("train_gpu.py needs torch (a CUDA build)")
    if not torch.cuda.is_available():
        sys.exit(
            "train_gpu.py needs a CUDA device: torch sees none "
            f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'})"
        )
    from recis.core.cuda import loader

    try:
        loader.require_cupy("train_gpu.py (tables on the GPU)")
    except ImportError as error:
        sys.exit(str(error))


def batches(data_dir: str, batch_size: int):
    """Endless batches of the example's columns on the current GPU (epoch after epoch)."""
    from recis.io import OrcDataset
    from recis.tools.synthetic import declare_columns

    dataset = OrcDataset(
        batch_size,
        read_threads_num=8,
        prefetch=3,
        drop_remainder=True,
        transform_fn=lambda tables: tables[0],
        device="cuda",
    )
    dataset.add_path(data_dir)
    declare_columns(dataset)
    while True:
        yield from dataset


class RecisSystem:
    """The example's DeepFM: feature engine, GPU hash tables, SparseAdam."""

    def __init__(self, vocab: int) -> None:
        import torch

        from examples.deepfm.model import DeepFM
        from recis.nn import filter_out_sparse_param
        from recis.optim import SparseAdam

        self.model = DeepFM(dim=DIM, hidden=HIDDEN, device="cuda").cuda()
        self.dense = torch.optim.AdamW(self.model.mlp.parameters(), lr=LR)
        self.sparse = SparseAdam(filter_out_sparse_param(self.model), lr=SPARSE_LR)
        tables = filter_out_sparse_param(self.model).values()
        self.merged_tables = len({id(table.table) for table in tables})

    def features(self, batch: dict) -> dict:
        return self.model.features(batch)

    def lookup(self, features: dict) -> dict:
        return self.model.embeddings(features)

    def dense_step(self, batch: dict, embeddings: dict) -> None:
        dense_step(self.model.mlp, self.dense, batch, embeddings)

    def sparse_update(self) -> None:
        self.sparse.step()


class EmbeddingBagSystem:
    """The same DeepFM over static ``nn.EmbeddingBag`` tables (``id mod vocab``), SparseAdam."""

    def __init__(self, vocab: int) -> None:
        import torch
        from torch import nn

        from examples.deepfm.model import deep_tower
        from recis.tools.synthetic import CATEGORICAL

        self.vocab = vocab
        self.columns = CATEGORICAL
        tables = {}
        for column in CATEGORICAL:
            for kind, dim in (("emb", DIM), ("bias", 1)):
                bag = nn.EmbeddingBag(vocab, dim, mode="sum", sparse=True, include_last_offset=True)
                nn.init.trunc_normal_(bag.weight, std=0.01)
                tables[f"{column}_{kind}"] = bag
        self.tables = nn.ModuleDict(tables).cuda()
        self.tower = deep_tower(DIM, HIDDEN).cuda()
        self.dense = torch.optim.AdamW(self.tower.parameters(), lr=LR)
        self.sparse = torch.optim.SparseAdam(self.tables.parameters(), lr=SPARSE_LR)

    def features(self, batch: dict) -> dict:
        return {
            c: (batch[c].values().remainder(self.vocab), batch[c].offsets()[-1])
            for c in self.columns
        }

    def lookup(self, features: dict) -> dict:
        out = {}
        for column, (ids, offsets) in features.items():
            for kind in ("emb", "bias"):
                out[f"{column}_{kind}"] = self.tables[f"{column}_{kind}"](ids, offsets)
        return out

    def dense_step(self, batch: dict, embeddings: dict) -> None:
        self.sparse.zero_grad(set_to_none=True)
        dense_step(self.tower, self.dense, batch, embeddings)

    def sparse_update(self) -> None:
        self.sparse.step()


def dense_step(tower, optimizer, batch: dict, embeddings: dict) -> None:
    """Tower forward, loss, backward (into the tables too) and the dense optimizer step."""
    import torch

    from examples.deepfm.model import deepfm_logits

    logits = deepfm_logits(tower, batch, embeddings)
    label = batch["label"].reshape(-1).float()
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), label)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def measure(system_name: str, args) -> dict:
    """samples/s and the per-stage milliseconds per step of one system, in this process."""
    import torch

    torch.manual_seed(0)
    system = {"recis": RecisSystem, "embedding_bag": EmbeddingBagSystem}[system_name](args.vocab)
    source = batches(args.data, args.batch_size)
    marks, start = [], 0.0
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            torch.cuda.synchronize()
            start = time.perf_counter()
        events = train_step(system, source)
        if step >= args.warmup:
            marks.append(events)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    stage_ms = {
        stage: sum(e[k].elapsed_time(e[k + 1]) for e in marks) / len(marks)
        for k, stage in enumerate(STAGES)
    }
    return {
        "samples_per_second": args.steps * args.batch_size / seconds,
        "stage_ms": stage_ms,
        **profiled_step(system, source),
    }


def train_step(system, source) -> list:
    """One step of ``system`` on the next batch; CUDA events around its stages."""
    events = [_event()]
    batch = next(source)
    events.append(_event())
    features = system.features(batch)
    events.append(_event())
    embeddings = system.lookup(features)
    events.append(_event())
    system.dense_step(batch, embeddings)
    events.append(_event())
    system.sparse_update()
    events.append(_event())
    return events


def profiled_step(system, source) -> dict:
    """What the torch profiler sees in one step: device-to-host copies and kernels (all, ours,
    CuPy's; ours and CuPy's per merged table for the hash tables)."""
    import torch

    from recis.core.cuda import loader

    activities = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
    with (
        torch.profiler.profile(activities=activities) as profile,
        loader.counting_launches() as ours,
    ):
        train_step(system, source)
        torch.cuda.synchronize()
    events = profile.events()
    kernels = [e.name for e in events if e.device_type == torch.autograd.DeviceType.CUDA]
    kernels = [name for name in kernels if "Memcpy" not in name and "Memset" not in name]
    cupy_kernels = sum(name.startswith("cupy_") or "cub::" in name for name in kernels)
    report = {
        "device_to_host_copies_per_step": sum("DtoH" in event.name for event in events),
        "kernels_per_step": len(kernels),
        "engine_kernels_per_step": sum(ours.values()),
        "cupy_kernels_per_step": cupy_kernels,
    }
    tables = getattr(system, "merged_tables", 0)
    if tables:
        report["merged_tables"] = tables
        report["engine_and_cupy_kernels_per_merged_table"] = (
            sum(ours.values()) + cupy_kernels
        ) / tables
        report["engine_kernels_by_name"] = dict(ours.most_common())
    return report


def _event():
    import torch

    event = torch.cuda.Event(enable_timing=True)
    event.record()
    return event


def measure_in_subprocess(system: str, args) -> dict:
    """Run :func:`measure` in a fresh process (its own GPU memory and tables)."""
    command = [sys.executable, __file__, "--measure", system, "--data", args.data]
    for name in ("steps", "warmup", "batch_size", "vocab"):
        command += [f"--{name}", str(getattr(args, name))]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"measuring {system} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def write_data(directory: str, rows: int) -> None:
    from recis.tools.synthetic import write_dataset

    write_dataset(directory, rows=rows, files=8, seed=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch_size", type=int, default=65536)
    parser.add_argument("--vocab", type=int, default=1_000_000, help="rows per static table")
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=SYSTEMS)
    parser.add_argument("--data", default="", help="ORC directory (default: generated)")
    parser.add_argument("--measure", choices=SYSTEMS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    require_gpu()
    if args.measure:
        print(json.dumps(measure(args.measure, args)))
        return
    import torch

    with tempfile.TemporaryDirectory() as scratch:
        if not args.data:
            args.data = os.path.join(scratch, "data")
            write_data(args.data, rows=args.batch_size * (args.warmup + args.steps))
        results = {system: measure_in_subprocess(system, args) for system in args.systems}
    if {"recis", "embedding_bag"} <= results.keys():
        peer = results["embedding_bag"]["samples_per_second"]
        results["recis_vs_embedding_bag"] = results["recis"]["samples_per_second"] / peer
    report = {
        "benchmark": "gpu_training_deepfm",
        "unit": "samples/s",
        "stage_unit": "ms per step",
        "batch_size": args.batch_size,
        "steps": args.steps,
        "warmup": args.warmup,
        "static_vocab": args.vocab,
        "machine": {
            "gpu": torch.cuda.get_device_name(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
        },
        "results": results,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    main()

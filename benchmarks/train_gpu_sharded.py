"""Sharded GPU training: DeepFM samples/s on 1 and N GPUs and bytes exchanged per step.

The DeepFM of ``train_cpu.py`` (13 dense + 26 categorical features of Zipf ids, dim 16, MLP
400-400-400, binary cross-entropy) trains on the same global batches on 1 GPU and on N GPUs of one
machine (one process per GPU, NCCL), each rank taking 1/N of every global batch, the dense tower
data-parallel (DDP), in two systems:

- ``recis``: ``EmbeddingEngine`` over growable hash tables on the GPU
  (``EmbeddingOption(device="cuda")``) keyed by the raw int64 ids, sharded row-wise by hash of
  (table, id) over the ranks (ids, rows and gradients exchanged as CuPy arrays over NCCL), with
  ``recis.optim.SparseAdagrad``;
- ``torchrec``: TorchRec's ``EmbeddingBagCollection`` sharded by ``DistributedModelParallel``
  (TorchRec's planner picks the sharding), Adagrad fused into the backward pass; where TorchRec
  and fbgemm-gpu are installed.

Per system and world size the JSON reports samples/s of the whole job and the speed-up over one
GPU; for RecIS also, per rank and step, the calls and bytes sent by its all-to-alls (counts, ids,
rows, gradients) and all-reduces.

    python benchmarks/train_gpu_sharded.py --nproc 8 [--global_batch 65536] [--steps 20]

Needs ``--nproc`` CUDA devices, a CUDA build of torch with NCCL and CuPy.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SYSTEMS = ("recis", "torchrec")


def recis_model(device):
    """The DeepFM over RecIS's GPU hash tables, and its sparse and dense optimizers."""
    import torch
    from torch import nn
    from train_cpu import CAPACITY, DIM, NUM_SPARSE, VARIANTS, DenseTower

    from recis.backends.torch.initializers import UniformInitializer
    from recis.nn import EmbeddingEngine, EmbeddingOption, filter_out_sparse_param
    from recis.optim import SparseAdagrad

    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            init = UniformInitializer(-0.01, 0.01)
            self.engine = EmbeddingEngine({
                f"c{i}": EmbeddingOption(embedding_dim=DIM, shared_name=f"c{i}", initializer=init,
                                         capacity=CAPACITY, device="cuda")
                for i in range(NUM_SPARSE)
            })  # fmt: skip
            self.tower = DenseTower(VARIANTS["deepfm"][0]).to(device)

        def forward(self, batch):
            ids = batch["ids"]
            out = self.engine({f"c{i}": ids[:, i : i + 1] for i in range(NUM_SPARSE)})
            return self.tower(batch["dense"], [out[f"c{i}"] for i in range(NUM_SPARSE)])

    model = Model()
    sparse = SparseAdagrad(filter_out_sparse_param(model), lr=0.01)
    return model, [sparse, torch.optim.Adam(model.tower.parameters(), lr=1e-3)]


def torchrec_model(device):
    """The DeepFM over TorchRec's sharded EmbeddingBagCollection (Adagrad in the backward)."""
    import torch
    from torch import nn
    from torchrec import EmbeddingBagCollection, EmbeddingBagConfig, KeyedJaggedTensor
    from torchrec.distributed import DistributedModelParallel
    from torchrec.optim.apply_optimizer_in_backward import apply_optimizer_in_backward
    from train_cpu import DIM, NUM_SPARSE, VARIANTS, VOCAB, DenseTower

    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            tables = [
                EmbeddingBagConfig(name=f"c{i}", embedding_dim=DIM, num_embeddings=VOCAB,
                                   feature_names=[f"c{i}"])
                for i in range(NUM_SPARSE)
            ]  # fmt: skip
            self.keys = [f"c{i}" for i in range(NUM_SPARSE)]
            ebc = EmbeddingBagCollection(tables=tables, device=torch.device("meta"))
            apply_optimizer_in_backward(torch.optim.Adagrad, ebc.parameters(), {"lr": 0.01})
            self.ebc = DistributedModelParallel(ebc, device=device)
            self.tower = DenseTower(VARIANTS["deepfm"][0]).to(device)

        def forward(self, batch):
            ranks = batch["ranks"]
            kjt = KeyedJaggedTensor.from_lengths_sync(
                keys=self.keys,
                values=ranks.t().reshape(-1),
                lengths=torch.ones(ranks.numel(), dtype=torch.int64, device=ranks.device),
            )
            out = self.ebc(kjt).to_dict()
            return self.tower(batch["dense"], [out[k] for k in self.keys])

    model = Model()
    return model, [torch.optim.Adam(model.tower.parameters(), lr=1e-3)]


def rank_main(args) -> None:
    """One rank: train ``args.steps`` steps of ``args.system``; rank 0 prints a JSON line."""
    import torch
    import torch.distributed as dist
    from torch import nn

    sys.path.insert(0, str(HERE))
    from train_cpu import make_batches

    from recis.backends.torch import default_communicator

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
    torch.cuda.set_device(device)
    dist.init_process_group("nccl", timeout=datetime.timedelta(seconds=600), device_id=device)
    torch.manual_seed(0)
    model, optimizers = (recis_model if args.system == "recis" else torchrec_model)(device)
    if world > 1:
        model.tower = nn.parallel.DistributedDataParallel(model.tower, device_ids=[device])
    size = args.global_batch // world
    batches = [
        {k: v[rank * size : (rank + 1) * size].to(device) for k, v in b.items()}
        for b in make_batches(args.steps, args.global_batch, seed=1)
    ]
    loss_fn = nn.BCEWithLogitsLoss()
    comm = default_communicator()
    for step, batch in enumerate(batches):
        if step == args.warmup:
            torch.cuda.synchronize()
            dist.barrier()
            if comm is not None:
                comm.traffic.clear()
            start = time.perf_counter()
        for optimizer in optimizers:
            optimizer.zero_grad()
        loss_fn(model(batch), batch["label"]).backward()
        for optimizer in optimizers:
            optimizer.step()
    torch.cuda.synchronize()
    dist.barrier()
    seconds = time.perf_counter() - start
    measured = args.steps - args.warmup
    if rank == 0:
        traffic = {
            kind: {k: v / measured for k, v in entry.items()}
            for kind, entry in (comm.traffic if comm is not None else {}).items()
        }
        result = {"seconds": seconds, "samples": measured * args.global_batch}
        print(json.dumps(result | {"traffic_per_rank_and_step": traffic}))
    dist.destroy_process_group()


def run_world(system: str, world: int, args) -> dict:
    """Start ``world`` ranks of ``system`` on this machine; rank 0's result."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    command = [sys.executable, __file__, "--rank_main", "--system", system,
               "--global_batch", str(args.global_batch), "--steps", str(args.steps),
               "--warmup", str(args.warmup)]  # fmt: skip
    ranks = [dict(env, RANK=str(r), LOCAL_RANK=str(r)) for r in range(world)]
    processes = [subprocess.Popen(command, env=e, stdout=subprocess.PIPE, text=True) for e in ranks]
    outputs = [p.communicate()[0] for p in processes]
    if any(p.returncode for p in processes):
        return {"error": f"a rank of {system} on {world} GPU(s) failed (see its stderr)"}
    result = json.loads(outputs[0].strip().splitlines()[-1])
    result["samples_per_second"] = result.pop("samples") / result.pop("seconds")
    return result


def available(system: str) -> bool:
    if system != "torchrec":
        return True
    try:
        import torchrec  # noqa: F401
    except ImportError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nproc", type=int, default=2, help="GPUs of the sharded run")
    parser.add_argument("--global_batch", type=int, default=65536)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=SYSTEMS)
    parser.add_argument("--rank_main", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--system", choices=SYSTEMS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rank_main:
        rank_main(args)
        return
    results = {}
    for system in args.systems:
        if not available(system):
            results[system] = {"skipped": "torchrec is not installed"}
            continue
        worlds = {f"gpus_{n}": run_world(system, n, args) for n in sorted({1, args.nproc})}
        base = worlds["gpus_1"].get("samples_per_second")
        for result in worlds.values():
            if base and "samples_per_second" in result:
                result["speedup_vs_1"] = result["samples_per_second"] / base
        results[system] = worlds
    report = {"benchmark": "train_gpu_sharded", "global_batch": args.global_batch}
    report["model"] = "deepfm 26x16, MLP 400-400-400"
    print(json.dumps(report | {"results": results}, indent=1))


if __name__ == "__main__":
    main()

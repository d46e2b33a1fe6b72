"""Sharded training on 1, 2 and 4 local processes (gloo): throughput and communication volume.

The DeepFM of ``train_cpu.py`` (26 categorical features, dim 16, Zipf ids, MLP 400-400-400,
sparse Adagrad) trains on the same global batches with its tables sharded over W ranks and the
dense tower data-parallel (DDP); each rank takes 1/W of every global batch. Per world size the
JSON reports samples/s of the whole job, the speed-up over one process, per rank and step the
calls and bytes sent by RecIS's all-to-alls (counts, ids out, rows back, gradients out) and
all-reduces, and the size of the dense gradients DDP all-reduces each step (its own traffic).

    python benchmarks/distributed.py [--worlds 1 2 4] [--global_batch 8192] [--steps 12]

On a machine with fewer cores than ranks the ranks share cores, so the scaling measured says how
much the exchange costs, not how a cluster scales.
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


def rank_main(args) -> None:
    import torch
    import torch.distributed as dist
    from torch import nn

    sys.path.insert(0, str(HERE))
    from train_cpu import VARIANTS, RecisModel, make_batches

    from recis.backends.torch import default_communicator

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    if world > 1:
        dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=600))
    torch.manual_seed(0)
    model = RecisModel(VARIANTS["deepfm"][0], with_bias=False)
    sparse, dense = model.optimizers()
    if world > 1:
        model.tower = nn.parallel.DistributedDataParallel(model.tower)
    loss_fn = nn.BCEWithLogitsLoss()
    size = args.global_batch // world
    batches = [
        {k: v[rank * size : (rank + 1) * size] for k, v in b.items()}
        for b in make_batches(args.steps, args.global_batch, seed=1)
    ]
    comm = default_communicator()
    for step, batch in enumerate(batches):
        if step == args.warmup:
            if comm is not None:
                comm.barrier("start of the measured steps")
                comm.traffic.clear()
            start = time.perf_counter()
        sparse.zero_grad()
        dense.zero_grad()
        loss_fn(model(batch), batch["label"]).backward()
        dense.step()
        sparse.step()
    if comm is not None:
        comm.barrier("end of the measured steps")
    seconds = time.perf_counter() - start
    measured = args.steps - args.warmup
    traffic = {} if comm is None else {
        kind: {k: v / measured for k, v in entry.items()} for kind, entry in comm.traffic.items()
    }  # fmt: skip
    if rank == 0:
        rows = sum(len(t.table) for t in model.engine.tables.values())
        result = {"seconds": seconds, "samples": measured * args.global_batch}
        result |= {"traffic_per_rank_and_step": traffic, "ids_on_rank0": rows}
        dense_bytes = sum(p.numel() * p.element_size() for p in model.tower.parameters())
        result["ddp_gradient_bytes_per_step"] = dense_bytes if world > 1 else 0
        print(json.dumps(result))
    if world > 1:
        dist.destroy_process_group()


def run_world(world: int, args) -> dict:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    command = [sys.executable, __file__, "--rank_main", "--global_batch", str(args.global_batch),
               "--steps", str(args.steps), "--warmup", str(args.warmup)]  # fmt: skip
    processes = [
        subprocess.Popen(command, env=dict(env, RANK=str(r)), stdout=subprocess.PIPE, text=True)
        for r in range(world)
    ]
    outputs = [p.communicate()[0] for p in processes]
    if any(p.returncode for p in processes):
        raise SystemExit(f"world size {world}: a rank failed")
    result = json.loads(outputs[0].strip().splitlines()[-1])
    result["samples_per_second"] = result.pop("samples") / result.pop("seconds")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worlds", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--global_batch", type=int, default=8192)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rank_main", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rank_main:
        rank_main(args)
        return
    results = {f"world_{w}": run_world(w, args) for w in args.worlds}
    base = results.get("world_1", {}).get("samples_per_second")
    for result in results.values():
        if base:
            result["speedup_vs_1"] = result["samples_per_second"] / base
    report = {"benchmark": "distributed", "cores": os.cpu_count()}
    report |= {"global_batch": args.global_batch, "model": "deepfm 26x16, MLP 400-400-400"}
    print(json.dumps(report | {"results": results}, indent=1))


if __name__ == "__main__":
    main()

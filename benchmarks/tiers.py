"""CPU training with storage tiers: a table 4× its RAM budget vs the same run all in RAM.

One run trains the same DeepFM twice (13 dense + 26 categorical features, one id per feature,
ids Zipf-distributed with exponent 1.05 over 1M values per feature, dim 16, SparseAdagrad, the
MLP of ``train_cpu.py``'s variant, ``sparse_heavy`` by default): first with every row in RAM,
then with ``StorageTiers(ram_bytes=...)`` set to a quarter of the bytes the first run's table
holds (rows with their Adagrad slots), the rest in memory-mapped files on local disk. It prints
one JSON object:

- ``throughput_ratio``: samples/s of the tiered run / samples/s all in RAM (after ``--warmup``
  steps of each); ``cpu_ratio``: the same from the CPU time this process used per sample (less
  sensitive to other processes on a shared machine);
- ``identical``: whether the two runs' losses and tables (ids, rows, slots) are bitwise equal;
- ``hit_rate``, ``promotions``, ``demotions``: the tiered table's training lookups;
- ``table_bytes``, ``ram_budget_bytes``, ``ram_bytes``, ``ram_index_bytes``: the all-in-RAM
  table's rows, the RAM budget, the hot rows the tiered table holds in RAM, and the bookkeeping
  of where its rows are (12 bytes per row);
- ``disk_bytes``: what its files take on disk, as the file system counts them;
- ``estimated_bytes``, ``measured_bytes``, ``estimator_error``: per tier, what
  ``estimate_memory`` gives for the tiered table's ids, what the table holds (RAM: its arrays, as
  ``stats()`` counts them; disk: ``disk_bytes``), and (estimated - measured) / measured.

    python benchmarks/tiers.py [--steps 24] [--warmup 4] [--variant sparse_heavy]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch
from torch import nn
from train_cpu import CAPACITY, DIM, NUM_SPARSE, VARIANTS, DenseTower, make_batches

from recis.backends.torch.initializers import UniformInitializer
from recis.core.memory import estimate_memory
from recis.core.optim import Adagrad
from recis.core.tiers import StorageTiers
from recis.nn import EmbeddingEngine, EmbeddingOption, filter_out_sparse_param
from recis.optim import SparseAdagrad


class TieredDeepFM(nn.Module):
    """DeepFM over one merged table of the 26 features, with storage tiers ``storage``."""

    def __init__(self, hidden, storage):
        super().__init__()
        init = UniformInitializer(-0.01, 0.01)
        options = {
            f"c{i}": EmbeddingOption(
                embedding_dim=DIM, shared_name=f"c{i}", initializer=init, capacity=CAPACITY,
                storage=storage,
            )
            for i in range(NUM_SPARSE)
        }  # fmt: skip
        self.engine = EmbeddingEngine(options)
        self.tower = DenseTower(hidden)

    def forward(self, batch):
        ids = batch["ids"]
        out = self.engine({f"c{i}": ids[:, i : i + 1] for i in range(NUM_SPARSE)})
        return self.tower(batch["dense"], [out[f"c{i}"] for i in range(NUM_SPARSE)])

    def table(self):
        (table,) = filter_out_sparse_param(self).values()
        return table.table


def train(hidden, storage, batches, warmup):
    """Train a fresh model on ``batches``: (samples/s after ``warmup``, CPU seconds of this
    process per 1000 samples after ``warmup``, losses, engine table)."""
    torch.manual_seed(0)
    model = TieredDeepFM(hidden, storage)
    optimizers = [
        SparseAdagrad(filter_out_sparse_param(model), lr=0.01),
        torch.optim.Adam(model.tower.parameters(), lr=1e-3),
    ]
    loss_fn, losses, start, cpu = nn.BCEWithLogitsLoss(), [], 0.0, 0.0
    for step, batch in enumerate(batches):
        if step == warmup:
            start, cpu = time.perf_counter(), time.process_time()
        for optimizer in optimizers:
            optimizer.zero_grad()
        loss = loss_fn(model(batch), batch["label"])
        loss.backward()
        for optimizer in optimizers:
            optimizer.step()
        losses.append(loss.item())
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    samples = (len(batches) - warmup) * len(batches[0]["label"])
    return samples / seconds, 1000 * cpu / samples, losses, model.table()


def same_tables(a, b) -> bool:
    """Bitwise equal state: ids, rows, values and slots."""
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(np.array_equal(sa[k], sb[k]) for k in sa)


def estimated_and_measured(table, tiers) -> tuple[dict, dict]:
    """Bytes per tier of the tiered ``table``: as ``estimate_memory`` predicts them for its ids,
    and as held (RAM: the table's arrays; disk: the files' blocks)."""
    estimate = estimate_memory(
        len(table), DIM, optimizer=Adagrad(), capacity=table.ids._initial_capacity,
        block_rows=table.store.block_rows, storage=tiers,
    )  # fmt: skip
    measured = {"ram": table.stats()["tier_bytes"]["ram"], "disk": table.store.disk.disk_usage()}
    return estimate.tiers, measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--warmup", type=int, default=4)
    parser.add_argument("--batch_size", type=int, default=4096)
    parser.add_argument("--variant", default="sparse_heavy", choices=list(VARIANTS))
    parser.add_argument("--ratio", type=float, default=4.0, help="table bytes / RAM budget")
    parser.add_argument("--policy", default="lru", choices=["lru", "lfu"])
    parser.add_argument("--directory", default=None, help="where the disk tier's files go")
    args = parser.parse_args()
    began = time.perf_counter()
    hidden = VARIANTS[args.variant][0]
    batches = make_batches(args.warmup + args.steps, args.batch_size)
    in_ram, ram_cpu, ram_losses, ram_table = train(hidden, None, batches, args.warmup)
    row_bytes = ram_table.store.block_bytes // ram_table.store.block_rows
    table_bytes = len(ram_table) * row_bytes
    tiers = StorageTiers(int(table_bytes / args.ratio), None, args.directory, args.policy)
    tiered, tier_cpu, tier_losses, tier_table = train(hidden, tiers, batches, args.warmup)
    stats = tier_table.stats()["tiers"]
    estimated, measured = estimated_and_measured(tier_table, tiers)
    result = {
        "benchmark": "cpu_training_storage_tiers",
        "unit": "samples/s",
        "variant": args.variant,
        "batch_size": args.batch_size,
        "steps": args.steps,
        "ids": len(ram_table),
        "all_in_ram": in_ram,
        "tiered": tiered,
        "throughput_ratio": tiered / in_ram,
        "cpu_seconds_per_1000_samples": {"all_in_ram": ram_cpu, "tiered": tier_cpu},
        "cpu_ratio": ram_cpu / tier_cpu,
        "identical": ram_losses == tier_losses and same_tables(ram_table, tier_table),
        "hit_rate": stats["hit_rate"],
        "promotions": stats["promotions"],
        "demotions": stats["demotions"],
        "table_bytes": table_bytes,
        "ram_budget_bytes": tiers.ram_bytes,
        "ram_bytes": stats["ram"]["bytes"],
        "ram_index_bytes": stats["ram"]["index_bytes"],
        "disk_bytes": measured["disk"],
        "estimated_bytes": estimated,
        "measured_bytes": measured,
        "estimator_error": {t: (estimated[t] - measured[t]) / measured[t] for t in measured},
        "seconds": time.perf_counter() - began,
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads()},
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

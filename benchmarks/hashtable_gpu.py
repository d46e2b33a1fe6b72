"""GPU hash-table throughput: RecIS on CUDA vs ``torch.unique`` and ``torch.index_select``.

On a table of 64M slots (fp32 rows of dim 16 and 64, filled to load factors 0.5 and 0.75), with
1M keys per call, it measures in one run:

- ``find``: ``IdMap.find`` of existing keys;
- ``find_gather``: ``EmbeddingTable.find`` then ``gather`` of their rows (the lookup of a step);
- ``find_or_insert``: ``IdMap.find_or_insert`` of fresh keys;
- ``find_or_insert_init``: ``EmbeddingTable.find_or_insert`` of fresh keys, rows initialised;
- ``erase``: ``IdMap.erase`` of the keys just inserted (this also keeps the load steady);
- peer ``torch_index_select``: ``torch.index_select`` of 1M random rows of a dense tensor of the
  table's size;
- ``dedupe`` (1M ids, half of them repeats): ``recis.core.dedupe.unique_inverse`` vs
  ``torch.unique(return_inverse=True)``.

Keys are random int64 (a bijective mix of counters, never 0); fresh keys are new to the table at
every call. Each figure is keys per second from CUDA events, median over ``--runs`` calls after
warm-up. The table parts use ``EmbeddingTable(..., device="cuda")``. Prints one JSON object.

    python benchmarks/hashtable_gpu.py [--slots 67108864] [--batch 1048576] [--runs 30]
"""

from __future__ import annotations

import argparse
import json
import platform

import cupy
import numpy as np
import torch

from recis.core.dedupe import unique_inverse
from recis.core.initializers import NormalInitializer
from recis.core.table import EmbeddingTable

TARGETS = {"find_gather": 5.0e9, "find_or_insert_init": 2.2e9, "dedupe": 2.0e9}
MAX_LOAD = 0.95  # the table's growth threshold, above every load factor measured
FILL_BATCH = 1 << 22


def mixed_keys(start: int, count: int) -> cupy.ndarray:
    """``count`` distinct non-zero int64 keys: MurmurHash3's finalizer (a bijection that maps 0 to
    0) of the counters ``start, start + 1, ...``, ``start >= 1``."""
    h = cupy.arange(start, start + count, dtype=cupy.uint64)
    for multiplier in (0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53, None):
        h ^= h >> cupy.uint64(33)
        if multiplier is not None:
            h *= cupy.uint64(multiplier)
    return h.view(cupy.int64)


def median_seconds(fn, prepare, runs: int, warmup: int = 3, events=cupy.cuda.Event) -> float:
    """Median time of ``fn(prepare())`` by CUDA events on the current stream; ``prepare`` runs
    untimed before each call."""
    times = []
    for run in range(warmup + runs):
        args = prepare()
        start, end = events(), events()
        start.record()
        fn(args)
        end.record()
        end.synchronize()
        if run >= warmup:
            times.append(_elapsed_seconds(start, end))
    return float(np.median(times))


def _elapsed_seconds(start, end) -> float:
    if isinstance(start, torch.cuda.Event):
        return start.elapsed_time(end) / 1e3
    return cupy.cuda.get_elapsed_time(start, end) / 1e3


class Bench:
    """One table of ``slots`` slots filled to ``load``, and its measurements."""

    def __init__(self, slots: int, dim: int, load: float, batch: int, runs: int) -> None:
        self.batch, self.runs = batch, runs
        self.table = EmbeddingTable(
            "bench", dim, NormalInitializer(std=0.01), seed=1, device="cuda", capacity=slots
        )
        self.table.ids.max_load = MAX_LOAD
        self.filled = int(slots * load)
        for start in range(0, self.filled, FILL_BATCH):
            count = min(FILL_BATCH, self.filled - start)
            self.table.insert_new(mixed_keys(1 + start, count))
        assert self.table.ids.capacity == slots, "the table grew while filling"
        self.next_fresh = 1 + self.filled
        self.rng = cupy.random.RandomState(dim)

    def existing_keys(self):
        picks = self.rng.randint(0, self.filled, self.batch, dtype=cupy.int64)
        return mixed_keys(1, self.filled)[picks]

    def fresh_keys(self):
        self.next_fresh += self.batch
        return mixed_keys(self.next_fresh - self.batch, self.batch)

    def measure(self) -> dict:
        table, ids = self.table, self.table.ids
        present = self.existing_keys()
        result = {
            "find": self.rate(ids.find, lambda: present),
            "find_gather": self.rate(lambda k: table.gather(table.find(k)), lambda: present),
        }
        result["find_or_insert"] = self.rate_fresh(ids.find_or_insert)
        result["find_or_insert_init"] = self.rate_fresh(table.find_or_insert)
        result["erase"] = self.rate(ids.erase, self.inserted_keys)
        result["torch_index_select"] = self.torch_index_select()
        assert len(ids) == self.filled, "the load drifted"
        return result

    def rate(self, fn, prepare) -> float:
        return self.batch / median_seconds(fn, prepare, self.runs)

    def rate_fresh(self, insert) -> float:
        """Throughput of ``insert`` on fresh keys; each batch is erased again, untimed."""
        inserted = []

        def prepare():
            if inserted:
                self.table.ids.erase(inserted.pop())
            keys = self.fresh_keys()
            inserted.append(keys)
            return keys

        rate = self.rate(insert, prepare)
        self.table.ids.erase(inserted.pop())
        return rate

    def inserted_keys(self):
        """Fresh keys, inserted untimed, for :meth:`IdMap.erase` to remove."""
        keys = self.fresh_keys()
        self.table.ids.find_or_insert(keys)
        return keys

    def torch_index_select(self) -> float:
        weight = torch.randn(self.filled, self.table.dim, device="cuda")
        generator = torch.Generator(device="cuda").manual_seed(0)

        def prepare():
            return torch.randint(0, self.filled, (self.batch,), device="cuda", generator=generator)

        seconds = median_seconds(
            lambda rows: torch.index_select(weight, 0, rows), prepare, self.runs,
            events=lambda: torch.cuda.Event(enable_timing=True),
        )  # fmt: skip
        return self.batch / seconds


def bench_dedupe(batch: int, runs: int) -> dict:
    """``unique_inverse`` against ``torch.unique`` on ids with about half of them repeated."""
    pool = mixed_keys(1 << 40, batch // 2)
    ids = pool[cupy.random.RandomState(0).randint(0, pool.size, batch, dtype=cupy.int64)]
    unique, inverse = unique_inverse(ids)
    assert bool((unique[inverse] == ids).all())
    torch_ids = torch.from_dlpack(ids)
    torch_seconds = median_seconds(
        lambda x: torch.unique(x, return_inverse=True), lambda: torch_ids, runs,
        events=lambda: torch.cuda.Event(enable_timing=True),
    )  # fmt: skip
    return {
        "ids": batch,
        "distinct": int(unique.size),
        "dedupe": batch / median_seconds(unique_inverse, lambda: ids, runs),
        "torch_unique": batch / torch_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slots", type=int, default=1 << 26)
    parser.add_argument("--batch", type=int, default=1 << 20)
    parser.add_argument("--dims", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--loads", type=float, nargs="+", default=[0.5, 0.75])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    results = []
    for dim in args.dims:
        for load in args.loads:
            bench = Bench(args.slots, dim, load, args.batch, args.runs)
            results.append({"dim": dim, "load_factor": load, **bench.measure()})
            del bench
            cupy.get_default_memory_pool().free_all_blocks()
            torch.cuda.empty_cache()
    device = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.runtime.getDevice())
    report = {
        "benchmark": "gpu_hashtable",
        "unit": "keys/s",
        "slots": args.slots,
        "batch": args.batch,
        "targets": TARGETS,
        "machine": {
            "gpu": device["name"].decode(),
            "python": platform.python_version(),
            "cupy": cupy.__version__,
            "torch": torch.__version__,
        },
        "results": results,
        "dedupe": bench_dedupe(args.batch, args.runs),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

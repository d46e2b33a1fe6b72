"""CPU hash-table throughput: RecIS ``IdMap`` vs pandas ``Index.get_indexer`` and a Python dict.

For each table size N (default 1M and 16M random int64 keys) it measures, in one run:

- ``insert_from_empty``: find_or_insert of N fresh keys in batches of 1M into an empty table
  (growth and rehashing included);
- ``insert_presized``: the same into a table created with capacity for N keys; the two take
  turns (which goes first alternates), and ``growth_ratio_wall`` / ``growth_ratio_cpu`` /
  ``growth_ratio_user`` give presized over growing time (median of the runs' ratios, by wall
  time, by the process's CPU time and by its user-mode CPU time), with each run's
  ``[wall, user, system]`` seconds in ``insert_seconds``. Each insert starts after a pause
  (``--pause``, default 8 s): in a virtual machine that hands freed memory back to its host
  (free page reporting, over a few seconds), memory freed just before is far cheaper to touch
  again than memory the host must supply afresh, which favoured the insert that allocates all
  of its slots at once, right after the other one freed its table; after the pause both start
  from fresh memory, as a new process does. The system time is mostly the kernel zeroing (and
  the host supplying) those fresh pages, the same 16 bytes per slot in both inserts, and varies
  a lot from run to run where the host is busy; the user time is the inserts' own work;
- ``find``: lookups of existing keys, batches of 1M;
- ``find_or_insert_hits``: find_or_insert of existing keys (the steady state of training);
- ``find_or_insert_10pct_new``: batches where 10% of the keys are new;
- peers: ``pandas_get_indexer`` (index built beforehand, build time reported apart),
  ``dict_insert`` and ``dict_find`` (a Python dict of the same keys, via ``dict.get``).

Throughput is keys per second (median of repeats; ``--repeats`` for the inserts, default 1).
``--cases`` runs only some groups: ``insert`` (both inserts), ``lookups``, ``mixed``, ``pandas``,
``dict`` (default: all). Prints one JSON object.

    python benchmarks/hashtable.py [--sizes 1000000 16000000] [--queries 4000000]
    python benchmarks/hashtable.py --sizes 16000000 --cases insert --repeats 3 [--pause 8]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numba
import numpy as np
import pandas as pd

from recis.core.id_map import IdMap

BATCH = 1 << 20


def timed(fn, repeats: int = 3) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def in_batches(fn, keys: np.ndarray) -> None:
    for start in range(0, keys.size, BATCH):
        fn(keys[start : start + BATCH])


def build(keys: np.ndarray, capacity: int) -> IdMap:
    table = IdMap("bench", capacity=capacity)
    in_batches(table.find_or_insert, keys)
    return table


CASES = ("insert", "lookups", "mixed", "pandas", "dict")


def bench_size(n: int, queries: int, rng: np.random.Generator, cases, repeats: int, pause: float):
    keys = rng.integers(-(2**63), 2**63 - 1, n, dtype=np.int64)
    hits = keys[rng.integers(0, n, queries)]
    fresh = rng.integers(-(2**63), 2**63 - 1, queries // 10, dtype=np.int64)
    mixed = hits.copy()
    mixed[rng.choice(queries, fresh.size, replace=False)] = fresh
    result = {"keys": n, "queries": queries}

    if "insert" in cases:
        result.update(bench_inserts(keys, repeats, pause))
    if "lookups" in cases:
        result.update(bench_lookups(build(keys, 1024), hits))
    if "mixed" in cases:
        result["find_or_insert_10pct_new"] = mixed_throughput(build(keys, 1024), mixed)
    if "pandas" in cases:
        result.update(bench_pandas(keys, hits))
    if "dict" in cases:
        result.update(bench_dict(keys, hits))
    return result


def bench_inserts(keys: np.ndarray, repeats: int, pause: float) -> dict:
    """Inserts into a growing and a presized table, in turns, each after ``pause`` seconds; the
    ratios are presized time over growing time (1.0: growth costs nothing), by wall time, by
    this process's CPU time and by its user-mode CPU time."""
    capacities = {"insert_from_empty": 1024, "insert_presized": int(keys.size / 0.5) + 1}
    runs = {name: [] for name in capacities}
    for repeat in range(repeats):
        for name in list(runs)[:: 1 if repeat % 2 == 0 else -1]:  # who goes first alternates
            time.sleep(pause)
            start = os.times()
            build(keys, capacities[name])
            end = os.times()
            runs[name].append(
                [end.elapsed - start.elapsed, end.user - start.user, end.system - start.system]
            )
    growing, presized = (np.array(times) for times in runs.values())
    cpu_growing, cpu_presized = growing[:, 1] + growing[:, 2], presized[:, 1] + presized[:, 2]
    return {
        **{name: keys.size / float(np.median(np.array(t)[:, 0])) for name, t in runs.items()},
        "growth_ratio_wall": float(np.median(presized[:, 0] / growing[:, 0])),
        "growth_ratio_cpu": float(np.median(cpu_presized / cpu_growing)),
        "growth_ratio_user": float(np.median(presized[:, 1] / growing[:, 1])),
        "insert_seconds": {name: np.round(t, 2).tolist() for name, t in runs.items()},
    }


def bench_lookups(table: IdMap, hits: np.ndarray) -> dict:
    return {
        "find": hits.size / timed(lambda: in_batches(table.find, hits)),
        "find_or_insert_hits": hits.size / timed(lambda: in_batches(table.find_or_insert, hits)),
        "bytes_per_key": table.nbytes / len(table),
        "load_factor": table.load_factor,
    }


def bench_pandas(keys: np.ndarray, hits: np.ndarray) -> dict:
    start = time.perf_counter()
    index = pd.Index(keys)
    index.get_indexer(keys[:1])  # builds pandas' hash table
    build_seconds = time.perf_counter() - start
    return {
        "pandas_index_build_seconds": build_seconds,
        "pandas_get_indexer": hits.size / timed(lambda: in_batches(index.get_indexer, hits)),
    }


def bench_dict(keys: np.ndarray, hits: np.ndarray) -> dict:
    key_list, hit_list = keys.tolist(), hits.tolist()
    start = time.perf_counter()
    table = dict(zip(key_list, range(len(key_list)), strict=True))
    insert_seconds = time.perf_counter() - start
    return {
        "dict_insert": len(key_list) / insert_seconds,
        "dict_find": len(hit_list) / timed(lambda: [table.get(k, -1) for k in hit_list], 1),
    }


def mixed_throughput(table: IdMap, mixed: np.ndarray) -> float:
    """find_or_insert throughput on ``mixed`` (10% new keys) against a built table."""
    start = time.perf_counter()
    in_batches(table.find_or_insert, mixed)
    return mixed.size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 16_000_000])
    parser.add_argument("--queries", type=int, default=4_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument("--repeats", type=int, default=1, help="runs of each insert (median)")
    parser.add_argument("--pause", type=float, default=8.0, help="seconds before each insert")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    build(rng.integers(0, 1 << 40, 5000), 16).find(np.arange(10))  # compile the kernels first
    report = {
        "benchmark": "cpu_hashtable",
        "unit": "keys/s",
        "machine": {
            "cpus": os.cpu_count(),
            "numba_threads": numba.get_num_threads(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "pandas": pd.__version__,
        },
        "results": [
            bench_size(n, args.queries, rng, args.cases, args.repeats, args.pause)
            for n in args.sizes
        ],
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

"""ORC reading to batches: ``OrcDataset`` vs pyarrow's own ``orc.read_table`` + NumPy conversion.

Writes a Criteo-shaped synthetic dataset (13 dense, 26 ``list<int64>`` columns, a label; see
``recis.tools.synthetic``) into a temporary directory, then measures, in one run and over the same
files:

- ``recis``: ``OrcDataset`` with 2 read threads, batch 4096, prefetch 2, every column declared,
  NumPy output (``--output torch`` for torch tensors);
- ``pyarrow``: ``pyarrow.orc.read_table`` of each file, every column converted to NumPy (dense
  columns with ``to_numpy``, list columns as their offsets and values).

Each measurement runs in a fresh process (best of ``--repeats``, the two alternating), so its peak
resident memory (``ru_maxrss``) is its own; ``peak_rss_above_start_mb`` subtracts the memory held
after imports, and ``arrow_pool_peak_mb`` is the most memory Arrow held at once (decoded
stripes; RSS also counts freed memory the allocator keeps, and the ORC library's buffers).
``memory_bound_mb`` is the design bound (read threads + 2) × largest decoded stripe + (prefetch +
1) × batch, checked against the Arrow peak; it does not grow with the dataset, while the peer
holds a whole file at a time. Rows/s and file MB/s (bytes on disk per second) are reported for both,
and ``rows_per_s_ratio`` is recis / pyarrow (target ≥ 0.8). Prints one JSON object.

    python benchmarks/io.py [--rows 1000000] [--files 4] [--repeats 3] [--output numpy|torch]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

BATCH_SIZE = 4096
READ_THREADS = 2
PREFETCH = 2


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure_recis(directory: str, output: str) -> dict:
    from recis.io import OrcDataset
    from recis.tools.synthetic import declare_columns

    dataset = OrcDataset(
        BATCH_SIZE, read_threads_num=READ_THREADS, prefetch=PREFETCH, output=output
    )
    dataset.add_path(directory)
    declare_columns(dataset)
    if output == "torch":
        import torch  # noqa: F401  (imported before the start measurement)
    start_rss = current_rss_mb()
    start = time.perf_counter()
    rows = sum(len(batch[0]["label"]) for batch in dataset)
    return {"rows": rows, "seconds": time.perf_counter() - start, "start_rss_mb": start_rss}


def measure_pyarrow(directory: str) -> dict:
    import pyarrow.orc as orc

    paths = sorted(os.path.join(directory, name) for name in os.listdir(directory))
    start_rss = current_rss_mb()
    start = time.perf_counter()
    rows = 0
    for path in paths:
        table = orc.read_table(path)
        for column in table.columns:
            array = column.combine_chunks()
            if hasattr(array, "offsets"):
                np.asarray(array.offsets).astype(np.int64)
                array.values.to_numpy()
            else:
                array.to_numpy()
        rows += table.num_rows
        del table
    return {"rows": rows, "seconds": time.perf_counter() - start, "start_rss_mb": start_rss}


def child(kind: str, directory: str, output: str) -> None:
    import pyarrow as pa

    result = measure_recis(directory, output) if kind == "recis" else measure_pyarrow(directory)
    result["peak_rss_mb"] = peak_rss_mb()
    result["arrow_pool_peak_mb"] = pa.default_memory_pool().max_memory() / 2**20
    print(json.dumps(result))


def run_child(kind: str, directory: str, output: str) -> dict:
    command = [sys.executable, __file__, "--child", kind, directory, "--output", output]
    completed = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def dataset_facts(directory: str) -> dict:
    import pyarrow.orc as orc

    from recis.io.orc_tail import stripe_rows

    paths = sorted(os.path.join(directory, name) for name in os.listdir(directory))
    stripes, largest, row_mb = 0, 0.0, 0.0
    for path in paths:
        reader = orc.ORCFile(path)
        rows = stripe_rows(reader.reader.serialized_file_tail())
        stripes += len(rows)
        stripe_mb = reader.read_stripe(int(np.argmax(rows))).nbytes / 2**20
        largest, row_mb = max(largest, stripe_mb), max(row_mb, stripe_mb / max(rows))
    file_mb = sum(os.path.getsize(path) for path in paths) / 2**20
    return {
        "files": len(paths),
        "stripes": stripes,
        "file_mb": file_mb,
        "stripe_mb": largest,
        "batch_mb": row_mb * BATCH_SIZE,
    }


def summarize(runs: list[dict], file_mb: float) -> dict:
    best = min(runs, key=lambda run: run["seconds"])
    return {
        "rows": best["rows"],
        "seconds": best["seconds"],
        "rows_per_s": best["rows"] / best["seconds"],
        "file_mb_per_s": file_mb / best["seconds"],
        "peak_rss_mb": max(run["peak_rss_mb"] for run in runs),
        "peak_rss_above_start_mb": max(run["peak_rss_mb"] - run["start_rss_mb"] for run in runs),
        "arrow_pool_peak_mb": max(run["arrow_pool_peak_mb"] for run in runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--stripe-size", type=int, default=8 << 20, help="ORC writer bytes")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", choices=("numpy", "torch"), default="numpy")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child, args.output)
        return
    from recis.tools.synthetic import write_dataset

    with tempfile.TemporaryDirectory() as directory:
        write_dataset(directory, args.rows, args.files, stripe_size=args.stripe_size)
        facts = dataset_facts(directory)
        runs = {"recis": [], "pyarrow": []}
        for _ in range(args.repeats):
            for kind, kind_runs in runs.items():
                kind_runs.append(run_child(kind, directory, args.output))
    results = {kind: summarize(kind_runs, facts["file_mb"]) for kind, kind_runs in runs.items()}
    bound = (READ_THREADS + 2) * facts["stripe_mb"] + (PREFETCH + 1) * facts["batch_mb"]
    print(
        json.dumps(
            {
                "benchmark": "orc_read_to_batches",
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "dataset": facts | {"rows": args.rows},
                "config": {
                    "batch_size": BATCH_SIZE,
                    "read_threads": READ_THREADS,
                    "prefetch": PREFETCH,
                    "output": args.output,
                },
                "recis": results["recis"],
                "pyarrow": results["pyarrow"],
                "rows_per_s_ratio": results["recis"]["rows_per_s"]
                / results["pyarrow"]["rows_per_s"],
                "memory_bound_mb": bound,
                "within_memory_bound": results["recis"]["arrow_pool_peak_mb"] <= bound,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

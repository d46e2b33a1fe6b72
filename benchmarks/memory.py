"""Estimated vs measured memory of CPU embedding tables: ``estimate_memory`` against RSS.

Each configuration runs in a fresh Python process: it loads the kernels, then creates one
``EmbeddingTable`` (with the optimizer's slots and the policies) and inserts random ids through
training lookups in batches of ``--batch`` ids. It reports the growth of the resident set (RSS)
over that (a step-filter policy then scans the table for stale ids once, as a filter hook
does), the same after ``malloc_trim`` (which returns what the C allocator kept of freed
temporaries), the peak RSS growth, what ``stats()`` reports, and what ``estimate_memory``
predicted before the table existed, with relative errors ``(estimated - measured) / measured``.
Prints one JSON object.

    python benchmarks/memory.py [--ids 1000000 5000000] [--batch 65536]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys

CONFIGS = [
    {"dim": 8, "optimizer": "Adam", "policies": []},
    {"dim": 16, "optimizer": "Adagrad", "policies": []},
    {"dim": 64, "optimizer": "SGD", "policies": []},
    {"dim": 16, "optimizer": "Adam", "policies": ["step_filter"]},
    {"dim": 16, "optimizer": "Adagrad", "policies": ["frequency_admission", "lfu_capacity"]},
]


def policies(names: list[str], ids: int) -> dict:
    """The table's policies by name; ``lfu_capacity`` keeps at most 80% of the ids."""
    from recis.core.policies import CapacityEviction, FrequencyAdmission, GlobalStepEviction

    made = {}
    if "frequency_admission" in names:
        made["admission"] = FrequencyAdmission(threshold=2)
    if "step_filter" in names:
        made["eviction"] = GlobalStepEviction(filter_step=100)
    if "lfu_capacity" in names:
        made["eviction"] = CapacityEviction(max_size=int(0.8 * ids), policy="lfu")
    return made


def measure(ids: int, dim: int, optimizer: str, policy_names: list[str], batch: int) -> dict:
    """Run in the child process: estimate, build the table, measure."""
    import ctypes
    import resource

    import numpy as np

    from recis.core import optim
    from recis.core.memory import estimate_memory
    from recis.core.optim.updater import SparseUpdater
    from recis.core.table import EmbeddingTable

    rule = getattr(optim, optimizer)()
    admits_twice = "frequency_admission" in policy_names  # each batch is looked up twice
    estimate = estimate_memory(
        ids, dim, optimizer=rule, batch=batch, pending_ids=batch if admits_twice else 0,
        **policies(policy_names, ids),
    )  # fmt: skip
    EmbeddingTable("warm", dim=dim).lookup(np.arange(5000))  # loads the kernels
    keys = np.random.default_rng(0).integers(-(2**62), 2**62, ids)
    before = rss()
    table = EmbeddingTable("t", dim=dim, **policies(policy_names, ids))
    SparseUpdater(rule, [table])
    for start in range(0, ids, batch):
        for _ in range(2 if admits_twice else 1):
            table.lookup(keys[start : start + batch])
    table.evict_stale()  # as a filter hook would: a policy scans every entry
    held, peak = rss() - before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    trimmed = rss() - before
    estimated, estimated_peak = estimate.tiers["ram"], estimate.peak["ram"]
    return {
        "ids": ids,
        "ids_held": len(table),
        "dim": dim,
        "optimizer": optimizer,
        "policies": policy_names,
        "estimated_bytes": estimated,
        "reported_bytes": table.stats()["bytes"],
        "measured_rss_bytes": held,
        "trimmed_rss_bytes": trimmed,
        "relative_error": (estimated - held) / held,
        "relative_error_trimmed": (estimated - trimmed) / trimmed,
        "estimated_peak_bytes": estimated_peak,
        "measured_peak_bytes": peak,
        "peak_relative_error": (estimated_peak - peak) / peak,
        "estimated_bytes_per_id": estimated / ids,
        "measured_bytes_per_id": held / ids,
    }


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def in_fresh_process(ids: int, config: dict, batch: int) -> dict:
    args = [ids, config["dim"], config["optimizer"], config["policies"], batch]
    code = f"import json, memory; print(json.dumps(memory.measure(*{args!r})))"
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=os.path.dirname(os.path.abspath(__file__)),
        check=False,
    )
    if done.returncode:
        raise RuntimeError(f"{config} at {ids} ids failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ids", type=int, nargs="+", default=[1_000_000, 5_000_000])
    parser.add_argument("--batch", type=int, default=65536, help="ids per training lookup")
    args = parser.parse_args()
    results = [in_fresh_process(n, config, args.batch) for n in args.ids for config in CONFIGS]
    errors = [abs(r["relative_error"]) for r in results]
    report = {
        "benchmark": "cpu_table_memory",
        "unit": "bytes",
        "batch": args.batch,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "max_abs_relative_error": max(errors),
        "max_abs_peak_relative_error": max(abs(r["peak_relative_error"]) for r in results),
        "results": results,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

"""estimate_memory against the engine's own accounting (stats()) and against measured RSS."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import ml_dtypes
import numpy as np
import pytest

from recis.core.memory import estimate_memory, id_map_capacity
from recis.core.optim import SGD, Adagrad, Adam
from recis.core.optim.updater import SparseUpdater
from recis.core.policies import CapacityEviction, FrequencyAdmission, GlobalStepEviction
from recis.core.table import EmbeddingTable
from recis.core.tiers import StorageTiers

CONFIGS = {
    "dim 8": dict(ids=100_000, dim=8),
    "dim 16, Adagrad": dict(ids=300_000, dim=16, optimizer=Adagrad()),
    "dim 64, float16, Adam": dict(ids=70_000, dim=64, dtype=np.float16, optimizer=Adam()),
    "bfloat16, SGD, step filter": dict(
        ids=200_000, dim=8, dtype=ml_dtypes.bfloat16, optimizer=SGD(),
        eviction=GlobalStepEviction(filter_step=10),
    ),
    "presized, small blocks": dict(ids=50_000, dim=4, capacity=1 << 18, block_rows=1024),
}  # fmt: skip


def built(ids, dim, optimizer=None, batches=7, **options) -> EmbeddingTable:
    """A table holding ``ids`` random ids, inserted in ``batches`` training lookups."""
    table = EmbeddingTable("t", dim=dim, **options)
    if optimizer is not None:
        SparseUpdater(optimizer, [table])
    keys = np.random.default_rng(ids).integers(-(2**62), 2**62, ids)
    for part in np.array_split(keys, batches):
        table.lookup(part)
    return table


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_estimate_is_what_the_table_reports(name):
    config = CONFIGS[name]
    options = {k: v for k, v in config.items() if k not in ("ids",)}
    table = built(config["ids"], **options)
    estimate = estimate_memory(**config)
    stats = table.stats()
    assert len(table) == config["ids"]
    assert estimate.tiers == stats["tier_bytes"] == {"ram": stats["bytes"]}
    assert estimate.parts["id_map"] == stats["id_map_bytes"] == 16 * stats["capacity"]
    row_parts = ("rows", "optimizer", "policy")
    assert sum(estimate.parts[p] for p in row_parts) == stats["row_bytes"]


def test_estimate_with_capacity_eviction_and_frequency_admission():
    """Evicted rows wait in the free-row list, and pending ids in the admission's side map:
    the estimate is within a few percent of what the table reports."""
    eviction, admission = CapacityEviction(max_size=60_000), FrequencyAdmission(threshold=2)
    table = EmbeddingTable("t", dim=8, eviction=eviction, admission=admission)
    SparseUpdater(Adagrad(), [table])
    keys = np.random.default_rng(1).integers(-(2**62), 2**62, 120_000)
    for part in np.array_split(keys[:100_000], 10):
        table.lookup(part)
        table.lookup(part)  # seen twice: admitted
    table.lookup(keys[100_000:])  # seen once: pending
    pending = admission.pending()
    estimate = estimate_memory(
        100_000, 8, optimizer=Adagrad(), eviction=CapacityEviction(max_size=60_000),
        admission=FrequencyAdmission(threshold=2), pending_ids=pending,
    )  # fmt: skip
    stats = table.stats()
    assert pending == 20_000 and len(table) == 60_000
    assert estimate.parts["admission"] >= stats["admission_bytes"] > 0
    assert estimate.tiers["ram"] == pytest.approx(stats["bytes"], rel=0.03)


def test_peak_adds_one_batch_and_budgets_are_checked():
    held = estimate_memory(1_000_000, 16)
    peak = estimate_memory(1_000_000, 16, batch=100_000, tiers={"ram": 80 * 2**20})
    assert peak.tiers == held.tiers
    assert peak.peak["ram"] - held.tiers["ram"] == 100_000 * (41 + 4 * 16)
    assert held.fits and not peak.fits  # 98.6 MB held > an 80 MiB budget
    with pytest.raises(ValueError, match=r"tiers \['disk'\] are not tiers of a cpu table wi"):
        estimate_memory(1000, 8, tiers={"ram": 2**20, "disk": None})


@pytest.mark.parametrize(("hot_rows", "policy"), [(3000, "lru"), (40_000, "lfu")])
def test_estimate_of_a_table_with_storage_tiers_is_what_it_reports(hot_rows, policy):
    row_bytes = 8 * 4 + 8 * 4  # dim 8 and Adagrad's sums
    tiers = StorageTiers(ram_bytes=hot_rows * row_bytes, policy=policy)
    table = built(50_000, 8, optimizer=Adagrad(), block_rows=4096, storage=tiers)
    estimate = estimate_memory(50_000, 8, optimizer=Adagrad(), block_rows=4096, storage=tiers)
    stats = table.stats()
    assert estimate.tiers.keys() == stats["tier_bytes"].keys() == {"ram", "disk"}
    assert estimate.tiers["disk"] == stats["tier_bytes"]["disk"] == 53_248 * row_bytes
    assert estimate.parts["hot_rows"] == stats["tiers"]["ram"]["bytes"]
    free = table.store.residency.free.nbytes  # slots freed by the last demotion, not estimated
    assert estimate.tiers["ram"] == stats["tier_bytes"]["ram"] - free
    assert free <= 8 * table.store.residency.slots // 16


def test_estimate_memory_is_reachable_from_the_package():
    import recis

    assert recis.estimate_memory is estimate_memory
    with pytest.raises(AttributeError, match="no attribute 'estimate_memry'"):
        recis.estimate_memry  # noqa: B018


def test_id_map_capacity_is_the_power_of_two_the_map_grows_to():
    for size in (0, 511, 512, 513, 100_000, 2**20):
        table = EmbeddingTable("t", dim=1)
        table.find_or_insert(np.arange(size))
        assert table.ids.capacity == id_map_capacity(size), size


RSS_SCRIPT = textwrap.dedent(
    """
    import json, numpy as np
    from recis.core.optim import Adagrad
    from recis.core.optim.updater import SparseUpdater
    from recis.core.table import EmbeddingTable

    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096

    EmbeddingTable("warm", dim=4).find_or_insert(np.arange(5000))  # loads the kernels
    keys = np.random.default_rng(0).integers(-(2**62), 2**62, 2_000_000)
    before = rss()
    table = EmbeddingTable("t", dim=16)
    SparseUpdater(Adagrad(), [table])
    for start in range(0, keys.size, 1 << 16):
        table.lookup(keys[start : start + (1 << 16)])
    print(json.dumps({"measured": rss() - before, "reported": table.stats()["bytes"]}))
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
def test_estimate_matches_resident_memory_of_a_2m_id_table():
    done = subprocess.run(
        [sys.executable, "-c", RSS_SCRIPT], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    estimated = estimate_memory(2_000_000, 16, optimizer=Adagrad()).tiers["ram"]
    assert estimated == result["reported"]
    assert result["measured"] == pytest.approx(estimated, rel=0.15)

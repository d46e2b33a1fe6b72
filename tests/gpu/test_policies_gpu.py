"""Admission and eviction bookkeeping on the GPU against the CPU's."""

from __future__ import annotations

import numpy as np
import pytest

from recis.core import policies
from recis.core.row_store import RowStore


def twin_stores(rows: int = 5000):
    stores = [RowStore(4, np.float32, 1024, "t", device) for device in ("cpu", "cuda")]
    for store in stores:
        store.add_slot("last_used", (), np.int64, fill=-1)
        store.add_slot("frequency", (), np.int64, fill=0)
        store.ensure_rows(rows)
    return stores


def slot_of(cp, store, slot: str) -> np.ndarray:
    """Every row's ``slot`` as a NumPy array."""
    everything = np.arange(store.capacity)
    if store.device == "cpu":
        return store.gather(everything, slot)
    return cp.asnumpy(store.gather(cp.asarray(everything), slot))


@pytest.mark.gpu
def test_touching_rows_and_selecting_stale_ones_equal_the_cpu(cp):
    cpu, gpu = twin_stores()
    rng = np.random.default_rng(0)
    assert policies.bookkeeping(cpu) is policies.HostBookkeeping
    host, device = policies.bookkeeping(cpu), policies.bookkeeping(gpu)
    for step in range(1, 30):
        rows = np.unique(rng.integers(0, 5000, 400))
        counts = rng.integers(1, 5, rows.size)
        host.touch_step(cpu, rows, "last_used", step)
        device.touch_step(gpu, cp.asarray(rows), "last_used", step)
        host.touch_count(cpu, rows, "frequency", counts)
        device.touch_count(gpu, cp.asarray(rows), "frequency", cp.asarray(counts))
    for slot in ("last_used", "frequency"):
        np.testing.assert_array_equal(slot_of(cp, gpu, slot), slot_of(cp, cpu, slot))
    candidates = rng.permutation(5000)[:3000]
    for threshold in (-1, 0, 10, 25, 100):
        expected = host.stale(cpu, candidates, "last_used", threshold)
        got = device.stale(gpu, cp.asarray(candidates), "last_used", threshold)
        np.testing.assert_array_equal(cp.asnumpy(got), expected)
    for count in (1, 17, 2999):
        for slot in ("last_used", "frequency"):
            expected = host.lowest(cpu, candidates, slot, count)
            got = cp.asnumpy(device.lowest(gpu, cp.asarray(candidates), slot, count))
            assert sorted(got.tolist()) == sorted(expected.tolist())


@pytest.mark.gpu
def test_repeated_rows_add_every_count(cp):
    _, gpu = twin_stores(16)
    rows = np.array([3, 3, 3, 5, -1, 99])  # -1 and 99 lie outside the store
    policies.bookkeeping(gpu).touch_count(gpu, cp.asarray(rows), "frequency", cp.ones(6, np.int64))
    assert cp.asnumpy(gpu.gather(cp.asarray([3, 5, 4]), "frequency")).tolist() == [3, 1, 0]


@pytest.mark.gpu
def test_frequency_admission_counts(cp):
    from recis.core.cuda.policies import advance_counts

    rng = np.random.default_rng(1)
    counts = rng.integers(0, 5, 1000)
    expected_counts = counts.copy()
    gpu_counts = cp.asarray(counts)
    for _ in range(5):
        rows = rng.permutation(1000)[:300]  # distinct keys' rows in the count table
        is_new, seen = rng.random(300) < 0.3, rng.integers(1, 3, 300)
        expected_counts[rows[is_new]] = 0  # what FrequencyAdmission.admit does on the CPU
        expected_counts[rows] += seen
        expected = expected_counts[rows] >= 4
        got = advance_counts(gpu_counts, cp.asarray(rows), cp.asarray(is_new), cp.asarray(seen), 4)
        np.testing.assert_array_equal(cp.asnumpy(got), expected)
    np.testing.assert_array_equal(cp.asnumpy(gpu_counts), expected_counts)


@pytest.mark.gpu
def test_usage_slots_must_be_one_int64_per_row(cp):
    _, gpu = twin_stores(16)
    with pytest.raises(TypeError, match="slot 'embedding' must hold one int64 per row"):
        policies.bookkeeping(gpu).touch_step(gpu, cp.asarray([1]), "embedding", 3)
    with pytest.raises(KeyError, match="no field 'nope'"):
        policies.bookkeeping(gpu).stale(gpu, cp.asarray([1]), "nope", 3)

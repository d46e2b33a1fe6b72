"""What lets a GPU training step run without waiting for the device: device values mirrored to
the host, errors raised later, rows allocated on the device, padded deduplication, a radix sort
instead of Thrust's, and updates that leave out non-finite rows on the device — each against its
CPU counterpart."""

from __future__ import annotations

import numpy as np
import pytest

from recis.core.cuda.host_mirror import DeferredErrors, HostMirror, raise_deferred_errors
from recis.core.cuda.row_allocator import DeviceRowAllocator, allocate_ranked
from recis.core.cuda.segment import row_groups
from recis.core.cuda.sort import group_by_key, group_by_key_reference, stable_argsort
from recis.core.dedupe import first_occurrences
from recis.core.errors import NonFiniteGradientError
from recis.core.id_map import IdMap
from recis.core.optim import Adam
from recis.core.optim.updater import SparseUpdater
from recis.core.row_allocator import RowAllocator
from recis.core.table import EmbeddingTable

pytestmark = pytest.mark.gpu


def test_a_mirror_shows_published_values_once_the_device_has_run(cp):
    mirror = HostMirror(4)
    assert mirror.values.tolist() == [0, 0, 0, 0]
    mirror.publish(cp.asarray([7, -(2**63), 2**63 - 1]), start=1)
    cp.cuda.Device().synchronize()
    assert mirror.values.tolist() == [0, 7, -(2**63), 2**63 - 1]
    with pytest.raises(IndexError, match="do not fit"):
        mirror.publish(cp.zeros(2, np.int64), start=3)


def test_deferred_errors_raise_what_the_device_found_and_only_that(cp):
    errors = DeferredErrors(slots=2)
    errors.report(cp.zeros((), np.int64), lambda n: ValueError(f"clean {n}"))
    errors.report(cp.asarray(3), lambda n: ValueError(f"{n} bad"))
    with pytest.raises(ValueError, match=r"^3 bad$"):
        errors.raise_found(wait=True)
    errors.raise_found(wait=True)  # each report is raised once
    for _ in range(5):  # more reports than slots: the oldest are waited for
        errors.report(cp.zeros(1, np.int64), lambda n: ValueError("never"))
    errors.raise_found(wait=True)


def test_the_allocation_kernels_equal_their_numpy_reference(cp):
    rng = np.random.default_rng(7)
    for _ in range(20):
        high_water = int(rng.integers(0, 1000))
        free = rng.permutation(high_water)[: int(rng.integers(0, min(high_water, 40) + 1))]
        count = int(rng.integers(0, 60))
        n = count + int(rng.integers(0, 10))
        device = DeviceRowAllocator()
        device.load_state({"high_water": np.array(high_water), "free": free})
        got = cp.asnumpy(device.allocate_ranked(cp.asarray(count), n))
        state = np.array([high_water, free.size, 0])
        expected = allocate_ranked(np, state, free.copy(), np.array([count]), n)
        np.testing.assert_array_equal(got, expected)
        assert (device.high_water, device.num_free) == tuple(state[:2].tolist())
        assert (device.high_water_bound(), device.live_bound()) == (state[0], state[0] - state[1])


def test_device_rows_are_the_host_allocators_and_its_bounds_hold(cp):
    rng = np.random.default_rng(0)
    host, device = RowAllocator(), DeviceRowAllocator()
    live: list[int] = []
    for _ in range(30):
        if live and rng.random() < 0.3:
            picked = rng.choice(len(live), rng.integers(1, len(live) + 1), replace=False)
            released = np.array([live[i] for i in picked])
            host.release(released)
            device.release(cp.asarray(released))
            live = [r for r in live if r not in set(released.tolist())]
        count, extra = int(rng.integers(0, 50)), int(rng.integers(0, 20))
        expected = host.allocate(count)
        got = device.allocate_ranked(cp.asarray(count), count + extra)
        assert device.high_water_bound() >= host.high_water
        assert device.live_bound() >= host.num_live
        got = cp.asnumpy(got)
        np.testing.assert_array_equal(got[:count], expected)
        assert (got[count:] == -1).all()
        live += expected.tolist()
        assert (device.high_water, device.num_free) == (host.high_water, host.num_free)
        assert (device.high_water_bound(), device.live_bound()) == (host.high_water, host.num_live)
    state = device.state()
    assert state["high_water"] == host.state()["high_water"]
    np.testing.assert_array_equal(state["free"], host.state()["free"])


def test_id_map_inserts_with_a_device_count_and_grows_when_the_bound_says_so(cp):
    rng = np.random.default_rng(1)
    cpu_map, gpu_map = IdMap("m", capacity=64), IdMap("m", capacity=64, device="cuda")
    for size in (10, 10, 30, 200, 5):
        batch = rng.integers(0, 150, size)
        want, got = cpu_map.find_or_insert(batch), gpu_map.find_or_insert(cp.asarray(batch))
        np.testing.assert_array_equal(cp.asnumpy(got.rows), want.rows)
        assert int(got.count) == want.count
        assert len(gpu_map) == len(cpu_map)
        assert gpu_map.capacity >= cpu_map.capacity  # grown for the bound, without waiting


@pytest.mark.parametrize("tags", [False, True])
def test_padded_first_occurrences_equal_the_cpus(cp, tags):
    rng = np.random.default_rng(2)
    keys = rng.integers(0, 500, 20_000)
    tag_array = rng.integers(0, 3, keys.size) if tags else None
    want = first_occurrences(keys, tag_array, padded=True)
    got = first_occurrences(cp.asarray(keys), None if tag_array is None else cp.asarray(tag_array),
                            padded=True)  # fmt: skip
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(cp.asnumpy(g), w)


def test_a_sync_free_table_takes_padded_batches(cp):
    rng = np.random.default_rng(3)
    tables = [EmbeddingTable("t", 4, device=d, seed=5) for d in ("cpu", "cuda")]
    assert [t.sync_free for t in tables] == [False, True]
    for _ in range(3):
        batch = rng.integers(0, 40, 64)
        first, inverse = first_occurrences(batch, padded=True)
        counts = np.bincount(inverse, minlength=batch.size)
        want = tables[0].lookup(batch[first], counts=counts)
        got = tables[1].lookup(cp.asarray(batch[first]), counts=cp.asarray(counts))
        np.testing.assert_array_equal(cp.asnumpy(got.rows), want.rows)
        assert (want.rows[counts == 0] == -1).all()
        np.testing.assert_allclose(cp.asnumpy(got.values), want.values, rtol=1e-6)
        assert got.stats.as_dict() == want.stats.as_dict()


@pytest.mark.parametrize("on_nonfinite", ["skip", "raise"])
def test_non_finite_rows_are_left_out_on_the_device(cp, on_nonfinite):
    tables = [EmbeddingTable("t", 2, device=d) for d in ("cpu", "cuda")]
    updaters = [SparseUpdater(Adam(), [t], on_nonfinite=on_nonfinite) for t in tables]
    rows = [t.find_or_insert(np.arange(4)).rows for t in tables]
    grads = np.ones((4, 2), np.float32)
    grads[2, 1] = np.nan
    before = cp.asnumpy(tables[1].gather(rows[1]))
    updaters[1].accumulate(tables[1], rows[1], cp.asarray(grads))
    updaters[1].step(lr=0.1)  # nothing waits: a NaN is noticed on the device
    after = cp.asnumpy(tables[1].gather(rows[1]))
    if on_nonfinite == "skip":
        updaters[0].accumulate(tables[0], rows[0], grads)
        updaters[0].step(lr=0.1)
        np.testing.assert_allclose(after, tables[0].gather(rows[0]), rtol=1e-6)
        assert updaters[1].skipped_rows == updaters[0].skipped_rows == {"t": 1}
        return
    np.testing.assert_array_equal(after, before)  # the whole table's update was left out
    with pytest.raises(NonFiniteGradientError, match=r"'t': 1 rows .* update 1"):
        updaters[1].state_dict()
    raise_deferred_errors(wait=True)  # raised once


@pytest.mark.parametrize("n, bound", [(1, 5), (1000, 3), (300_000, 1 << 20), (1 << 21, 1 << 33)])
def test_radix_argsort_is_numpys_stable_argsort(cp, n, bound):
    rng = np.random.default_rng(n)
    keys = rng.integers(0, bound, n)
    keys[rng.random(n) < 0.5] = keys[0]  # a hot key
    got = stable_argsort(cp.asarray(keys), bound)
    np.testing.assert_array_equal(cp.asnumpy(got), np.argsort(keys, kind="stable"))


@pytest.mark.parametrize("n, num_keys", [(0, 3), (1, 1), (5000, 7), (200_000, 50_000)])
def test_grouping_by_key_is_its_numpy_twin(cp, n, num_keys):
    rng = np.random.default_rng(n)
    keys = rng.integers(-2, num_keys + 2, n)  # some out of range
    keys[rng.random(n) < 0.3] = 0  # a hot key: a long group
    order, begin, end = (cp.asnumpy(a) for a in group_by_key(cp.asarray(keys), num_keys))
    want_order, want_begin, want_end = group_by_key_reference(keys, num_keys)
    np.testing.assert_array_equal(begin, want_begin)
    np.testing.assert_array_equal(end, want_end)
    np.testing.assert_array_equal(order[: want_order.size], want_order)


def test_row_groups_on_the_gpu_are_the_cpus(cp):
    rows = np.random.default_rng(4).integers(-1, 5000, 200_000)
    for got, want in zip(row_groups(cp.asarray(rows)), row_groups(rows), strict=True):
        np.testing.assert_array_equal(cp.asnumpy(got), want)

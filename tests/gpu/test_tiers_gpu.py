"""Storage tiers of GPU tables: the tier kernels against their NumPy twins, the tiered store
against a plain device RowStore, and a table trained with a small device tier against the same
table with every row on the device."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from recis.core.cuda import tiers as kernels
from recis.core.errors import TableFullError
from recis.core.initializers import NormalInitializer
from recis.core.optim import Adagrad, Adam, Ftrl
from recis.core.optim.updater import SparseUpdater
from recis.core.row_store import RowStore
from recis.core.table import EmbeddingTable
from recis.core.tiers import DeviceTieredRowStore, DeviceTiers, StorageTiers

pytestmark = pytest.mark.gpu


def test_locate_rows_matches_its_twin(cp):
    rng = np.random.default_rng(3)
    slot_of = np.where(rng.random(50) < 0.4, rng.permutation(50), -1).astype(np.int32)
    rows = rng.integers(-2, 70, 300)  # -1 and below: no row; 50 and up: no slot recorded
    got = kernels.locate_rows(cp.asarray(rows), cp.asarray(slot_of), hot_span=64)
    expected = kernels.locate_rows_reference(rows, slot_of, hot_span=64)
    np.testing.assert_array_equal(cp.asnumpy(got), expected)
    assert (expected[rows < 0] == -1).all() and (
        expected[rows >= 50] == rows[rows >= 50] + 64
    ).all()


@pytest.mark.parametrize(("dtype", "width"), [(np.float32, 3), (np.float16, 5), (np.int64, 1)])
def test_move_rows_matches_its_twin(cp, dtype, width):
    rng = np.random.default_rng(width)
    store = RowStore(width, dtype, 8, "t", device="cuda")
    store.ensure_rows(40)
    values = rng.integers(-1000, 1000, (40, width)).astype(dtype)
    store.scatter(np.arange(40), values)
    chosen = rng.permutation(44)[:24]  # two pairs fall outside the blocks
    source, target = chosen[:12], chosen[12:]
    spec = store.fields["embedding"]
    kernels.move_rows(store.blocks(), spec, cp.asarray(source), cp.asarray(target))
    host_blocks = list(values.view(spec.storage_dtype).reshape(5, 8, width).copy())
    kernels.move_rows_reference(host_blocks, source, target)
    got = store.gather(np.arange(40), dtype=spec.storage_dtype)
    np.testing.assert_array_equal(cp.asnumpy(got), np.concatenate(host_blocks))


def test_cold_blocks_are_pinned_host_memory_the_kernels_write(cp):
    store = DeviceTieredRowStore(2, np.float32, 4, "t", tiers=DeviceTiers(device_bytes=32))
    store.ensure_rows(6)
    store.scatter(np.array([5]), np.array([[1.5, 2.5]], np.float32))  # row 5 is cold
    home = store.hot_span + 5
    block = store.blocks()[home // 4]
    assert isinstance(block, kernels.PinnedBlock)
    assert block.host[home % 4].view(np.float32).tolist() == [1.5, 2.5]
    assert store.tier_stats()["pinned"]["bytes"] == 2 * 4 * 8  # two pinned blocks of 4 rows


@pytest.mark.parametrize("policy", ["lru", "lfu"])
@pytest.mark.parametrize("dtype", [np.float32, ml_dtypes.bfloat16])
def test_the_tiered_store_holds_what_a_device_row_store_holds(cp, policy, dtype):
    """Random promotions, new rows, writes, resets and a late slot: every read agrees with a
    device RowStore that holds every row, and at most the budget's rows are hot."""
    rng = np.random.default_rng(7)
    hot_rows = 6
    row_bytes = 3 * np.dtype(dtype).itemsize + 8 + 12  # with the late slot "sum"
    tiers = DeviceTiers(device_bytes=hot_rows * row_bytes, policy=policy)
    tiered = DeviceTieredRowStore(3, dtype, 4, "t", tiers=tiers)
    plain = RowStore(3, dtype, 4, "t", device="cuda")
    for store in (tiered, plain):
        store.add_slot("last_used", (), np.int64, fill=-1)
        store.ensure_rows(40)
    for step in range(40):
        rows = rng.choice(40, rng.integers(1, 10), replace=False)
        action = ["promote", "place", "write", "reset", "slot"][step % 5]
        if action == "promote":
            tiered.promote(cp.asarray(rows), cp.asarray(rng.integers(1, 4, rows.size)))
        elif action == "place":
            tiered.place_new(cp.asarray(rows))
            for store in (tiered, plain):
                store.scatter(rows, np.full((rows.size, 3), 0.5, np.float32))
                store.reset(rows)
        elif action == "write":
            values = rng.standard_normal((rows.size, 3)).astype(np.float32)
            steps = rng.integers(0, 99, rows.size)
            for store in (tiered, plain):
                store.scatter(cp.asarray(rows), cp.asarray(values))
                store.scatter(rows, steps, "last_used")
        elif action == "reset":
            for store in (tiered, plain):
                store.reset(rows)
        elif "sum" not in plain.fields:
            for store in (tiered, plain):
                store.add_slot("sum", (3,), np.float32, fill=0.25)
        assert tiered.residency.num_hot <= tiered.residency.slots
        assert tiered.residency.slots * tiered._row_bytes() <= tiers.device_bytes
    everything = np.arange(40)
    for name, spec in plain.fields.items():
        words = spec.storage_dtype
        expected = cp.asnumpy(plain.gather(everything, name, dtype=words))
        got = cp.asnumpy(tiered.gather(everything, name, dtype=words))
        np.testing.assert_array_equal(got, expected, err_msg=name)
    stats = tiered.tier_stats()
    assert stats["promotions"] > 0 and stats["demotions"] > 0


def _train(cp, storage, rule, steps=20, admission=None):
    table = EmbeddingTable(
        "clicks", dim=8, initializer=NormalInitializer(std=0.1), seed=5, block_rows=32,
        device="cuda", storage=storage, admission=admission,
    )  # fmt: skip
    updater = SparseUpdater(rule, [table])
    rng = np.random.default_rng(1)
    losses = []
    for _ in range(steps):
        ids, counts = np.unique(rng.zipf(1.2, 300) % 2000, return_counts=True)
        found = table.lookup(cp.asarray(ids), counts=cp.asarray(counts))
        target = rng.standard_normal((ids.size, 8)).astype(np.float32)
        error = found.values - cp.asarray(target)
        losses.append(float((error**2).sum()))
        updater.accumulate(table, found.rows, 2 * error)
        updater.step(lr=0.05)
    return table, losses


@pytest.mark.parametrize(
    ("rule", "admission", "tier_policy"),
    [(Adam(), None, "lru"), (Adagrad(), None, "lfu"), (Ftrl(), "frequency", "lru")],
)
def test_a_table_with_a_small_device_tier_trains_as_one_all_on_the_device(
    cp, rule, admission, tier_policy
):
    from recis.core.policies import FrequencyAdmission

    def make_admission():
        return FrequencyAdmission(threshold=2) if admission else None

    on_device, expected_losses = _train(cp, None, rule, admission=make_admission())
    row_bytes = on_device.store.block_bytes // on_device.store.block_rows
    hot_rows = 100
    tiers = DeviceTiers(device_bytes=hot_rows * row_bytes, policy=tier_policy)
    tiered, losses = _train(cp, tiers, rule, admission=make_admission())
    np.testing.assert_allclose(losses, expected_losses, rtol=1e-6)
    expected, state = on_device.state_dict(), tiered.state_dict()
    assert state.keys() == expected.keys()
    for name, array in expected.items():
        if array.dtype.kind == "f":
            np.testing.assert_allclose(state[name], array, rtol=1e-6, atol=1e-7, err_msg=name)
        else:
            np.testing.assert_array_equal(state[name], array, err_msg=name)
    assert len(tiered) > 4 * hot_rows
    stats = tiered.stats()
    tier = stats["tiers"]
    assert (
        tier["device"]["rows"] <= hot_rows and tier["device"]["budget_bytes"] == tiers.device_bytes
    )
    assert tier["device"]["bytes"] <= tiers.device_bytes + tiered.store.block_bytes + 4 * 4096
    assert stats["tier_bytes"]["pinned"] == tier["pinned"]["bytes"] >= len(tiered) * row_bytes
    assert tier["promotions"] > 0 and tier["demotions"] > 0 and 0 < tier["hit_rate"] < 1


def test_state_loads_into_either_layout_and_from_a_cpu_table(cp):
    source, _ = _train(cp, DeviceTiers(device_bytes=3000), Adam(), steps=8)
    state = source.state_dict()
    cpu = EmbeddingTable("clicks", dim=8, block_rows=16, storage=StorageTiers(ram_bytes=2000))
    SparseUpdater(Adam(), [cpu])
    cpu.load_state_dict(state)
    for storage in (None, DeviceTiers(device_bytes=2000, policy="lfu")):
        target = EmbeddingTable("clicks", dim=8, block_rows=16, device="cuda", storage=storage)
        SparseUpdater(Adam(), [target])
        target.load_state_dict(cpu.state_dict())
        for name, array in target.state_dict().items():
            np.testing.assert_array_equal(array, state[name], err_msg=name)


def test_budgets_are_checked_and_name_the_table(cp):
    with pytest.raises(ValueError, match=r"table 'wide'.*device_bytes=100 must hold"):
        DeviceTieredRowStore(dim=64, name="wide", tiers=DeviceTiers(device_bytes=100))
    tiers = DeviceTiers(device_bytes=64, host_bytes=100)
    table = EmbeddingTable("small", dim=2, block_rows=4, device="cuda", storage=tiers)
    with pytest.raises(TableFullError, match=r"table 'small': its pinned host tier is full"):
        table.lookup(cp.arange(40))
    with pytest.raises(NotImplementedError, match="table 'e': a GPU table with storage tiers"):
        from recis.core.policies import CapacityEviction

        EmbeddingTable(
            "e", dim=2, device="cuda", storage=tiers, eviction=CapacityEviction(max_size=9)
        )


@pytest.mark.parametrize("hot_rows", [None, 3000, 40_000])
def test_the_estimate_of_a_gpu_table_is_what_it_reports(cp, hot_rows):
    from recis.core.memory import estimate_memory

    row_bytes = 8 * 4 + 8 * 4  # dim 8 and Adagrad's sums
    tiers = None if hot_rows is None else DeviceTiers(device_bytes=hot_rows * row_bytes)
    options = {"block_rows": 4096, "device": "cuda", "storage": tiers}
    table = EmbeddingTable("t", dim=8, **options)
    SparseUpdater(Adagrad(), [table])
    keys = np.random.default_rng(0).integers(-(2**62), 2**62, 50_000)
    for part in np.array_split(keys, 7):
        table.lookup(cp.asarray(part))
    estimate = estimate_memory(50_000, 8, optimizer=Adagrad(), **options)
    stats = table.stats()
    assert estimate.tiers == stats["tier_bytes"]
    if hot_rows is not None:
        assert estimate.tiers["pinned"] == 53_248 * row_bytes
        assert estimate.parts["hot_rows"] == -(-hot_rows // 4096) * 4096 * row_bytes
    slots = 16 * table.ids.capacity
    assert estimate.peak["device"] == estimate.tiers["device"] + slots // 2

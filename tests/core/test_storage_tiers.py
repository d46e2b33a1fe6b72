"""Storage tiers: residency decisions, disk blocks, the tiered store against a RowStore, and a
table trained with a small RAM tier against the same table all in RAM."""

from __future__ import annotations

import gc

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recis.core.errors import TableFullError
from recis.core.initializers import NormalInitializer
from recis.core.optim import Adagrad, Adam, Ftrl
from recis.core.optim import updater as updater_module
from recis.core.optim.updater import SparseUpdater
from recis.core.policies import CapacityEviction, FrequencyAdmission
from recis.core.row_store import RowPlan, RowStore
from recis.core.table import EmbeddingTable
from recis.core.tiers import (
    DeviceTiers,
    DiskRows,
    Residency,
    StorageTiers,
    TieredPlan,
    TieredRowStore,
)


def test_the_lowest_scored_unprotected_rows_leave_first():
    residency = Residency(slots=4, policy="lru")
    residency.grow(10)
    for row in (0, 1, 2, 3):  # row 0 is the least recently used
        residency.touch(np.array([row]))
    residency.admit(np.arange(4), protected=np.arange(4))
    moves = residency.admit(np.array([7]), protected=np.array([0, 7]))
    assert moves.rows_out.tolist() == [1]  # a sixteenth of 4 slots rounds to one row
    assert moves.slots_out.tolist() == moves.slots_in.tolist() == [1]
    assert residency.slot_of[[0, 1, 7]].tolist() == [0, -1, 1]
    assert sorted(residency.owner.tolist()) == [0, 2, 3, 7]


def test_lfu_counts_uses_and_a_new_row_starts_from_zero():
    residency = Residency(slots=2, policy="lfu")
    residency.grow(6)
    residency.touch(np.array([0, 1]), np.array([5, 2]))
    residency.admit(np.array([0, 1]), protected=np.array([0, 1]))
    residency.touch(np.array([1]), np.array([4]))  # row 1: 6 uses, row 0: 5
    assert residency.admit(np.array([4]), protected=np.array([4])).rows_out.tolist() == [0]
    residency.restart(np.array([1]))
    assert residency.score[[0, 1, 4]].tolist() == [5, 0, 0]


def test_rows_that_do_not_fit_beside_protected_ones_stay_cold():
    residency = Residency(slots=3)
    residency.grow(8)
    assert residency.admit(np.arange(5), protected=np.arange(5)).rows_in.tolist() == [0, 1, 2]
    assert residency.admit(np.array([6]), protected=np.array([0, 1, 2, 6])).rows_in.size == 0


def test_a_large_shortfall_frees_a_sixteenth_of_the_slots_at_once():
    residency = Residency(slots=64)
    residency.grow(200)
    residency.touch(np.arange(64))
    residency.admit(np.arange(64), protected=np.arange(64))
    moves = residency.admit(np.array([100]), protected=np.array([100]))
    assert moves.rows_out.tolist() == [0, 1, 2, 3]  # the four least recently used
    assert residency.free.size == 3 and residency.num_hot == 61
    assert residency.admit(np.array([101, 102]), protected=np.array([])).rows_out.size == 0


def test_disk_blocks_are_files_of_one_directory_removed_with_the_store(tmp_path):
    store = RowStore(dim=4, block_rows=8, name="t/1", ops=DiskRows("t/1", str(tmp_path)))
    store.add_slot("last_used", (), np.int64, fill=-1)
    store.ensure_rows(20)  # three blocks of two fields
    (directory,) = tmp_path.iterdir()
    assert directory.name.startswith("recis-t_1-") and len(list(directory.iterdir())) == 6
    assert store._ops.file_bytes == 3 * 8 * (16 + 8) == store.nbytes
    assert store._ops.disk_usage() >= store.nbytes
    assert store.gather(np.array([0, 19]), "last_used").tolist() == [-1, -1]
    store.scatter(np.array([19]), np.array([[1, 2, 3, 4]], np.float32))
    assert store.gather(np.array([19, 0])).tolist() == [[1, 2, 3, 4], [0, 0, 0, 0]]
    del store
    gc.collect()
    assert not directory.exists()


def test_a_full_disk_tier_names_the_table(tmp_path):
    store = RowStore(dim=4, block_rows=8, ops=DiskRows("clicks", str(tmp_path), max_bytes=200))
    store.ensure_rows(8)
    with pytest.raises(TableFullError, match="table 'clicks': its disk tier is full"):
        store.ensure_rows(9)


def test_a_ram_budget_below_one_row_is_refused():
    with pytest.raises(ValueError, match=r"table 'wide'.*holds not even one row"):
        TieredRowStore(dim=64, name="wide", tiers=StorageTiers(ram_bytes=100))
    with pytest.raises(ValueError, match="policy must be one of"):
        StorageTiers(ram_bytes=100, policy="fifo")


def test_each_device_takes_its_own_tiers():
    with pytest.raises(TypeError, match="table 'g': storage of a table on cuda must be a Dev"):
        EmbeddingTable("g", dim=2, device="cuda", storage=StorageTiers(ram_bytes=1 << 20))
    with pytest.raises(TypeError, match="table 'c': storage of a table on cpu must be a Stor"):
        EmbeddingTable("c", dim=2, storage=DeviceTiers(device_bytes=1 << 20))


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_the_tiered_store_holds_what_a_row_store_holds(data):
    """Random promotions, new rows, writes, resets and a late slot: every read agrees with a
    RowStore that holds every row, and plans are plain RowPlans exactly when all rows are hot."""
    dtype = data.draw(st.sampled_from([np.float32, ml_dtypes.bfloat16]))
    policy = data.draw(st.sampled_from(["lru", "lfu"]))
    hot_rows = data.draw(st.integers(1, 12))
    row_bytes = 3 * np.dtype(dtype).itemsize + 8 + 12  # with the late slot "sum"
    tiered = TieredRowStore(
        3, dtype, 4, "t", tiers=StorageTiers(hot_rows * row_bytes, policy=policy)
    )
    plain = RowStore(3, dtype, 4, "t")
    for store in (tiered, plain):
        store.add_slot("last_used", (), np.int64, fill=-1)
        store.ensure_rows(40)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    for _ in range(data.draw(st.integers(1, 12))):
        rows = rng.choice(40, rng.integers(1, 16), replace=False)
        action = data.draw(st.sampled_from(["promote", "place", "write", "reset", "slot"]))
        if action == "promote":
            tiered.promote(rows, rng.integers(1, 4, rows.size))
        elif action == "place":
            tiered.place_new(rows)
            for store in (tiered, plain):
                store.scatter(rows, np.full((rows.size, 3), 0.5, np.float32))
                store.reset(rows)
        elif action == "write":
            values = rng.standard_normal((rows.size, 3)).astype(np.float32)
            steps = rng.integers(0, 99, rows.size)
            for store in (tiered, plain):
                store.scatter(rows, values)
                store.scatter(rows, steps, "last_used")
        elif action == "reset":
            for store in (tiered, plain):
                store.reset(rows)
        elif "sum" not in plain.fields:
            for store in (tiered, plain):
                store.add_slot("sum", (3,), np.float32, fill=0.25)
        plan = tiered.plan(rows)
        all_hot = (tiered.residency.slot_of[rows] >= 0).all()
        assert isinstance(plan, RowPlan if all_hot else TieredPlan)
        assert tiered.residency.num_hot <= tiered.residency.slots
    everything = np.arange(40)
    for name, spec in plain.fields.items():
        words = spec.storage_dtype
        expected = plain.gather(everything, name, dtype=words)
        np.testing.assert_array_equal(tiered.gather(everything, name, dtype=words), expected)


def _train(storage, rule, eviction=None, admission=None, steps=30):
    table = EmbeddingTable(
        "clicks", dim=8, initializer=NormalInitializer(std=0.1), seed=5, block_rows=64,
        admission=admission, eviction=eviction, storage=storage,
    )  # fmt: skip
    updater = SparseUpdater(rule, [table])
    rng = np.random.default_rng(1)
    for _ in range(steps):
        ids, counts = np.unique(rng.zipf(1.2, 400) % 3000, return_counts=True)
        found = table.lookup(ids, counts=counts)
        grads = rng.standard_normal((ids.size, 8)).astype(np.float32)
        updater.accumulate(table, found.rows, grads)
        updater.step(lr=0.05)
    return table


@pytest.mark.parametrize(
    ("rule", "policies", "tier_policy", "hot_rows"),
    [
        (Adam(), {}, "lru", 400),  # a batch's rows fit: the in-place kernels run
        (Adagrad(), {"eviction": lambda: CapacityEviction(max_size=500, policy="lfu")}, "lfu", 100),
        (Ftrl(), {"admission": lambda: FrequencyAdmission(threshold=2)}, "lru", 100),
    ],
)
def test_a_table_with_a_small_ram_tier_trains_bit_identically(
    rule, policies, tier_policy, hot_rows, monkeypatch
):
    made = {name: make() for name, make in policies.items()}
    in_ram = _train(None, rule, **made)
    row_bytes = in_ram.store.block_bytes // in_ram.store.block_rows
    tiers = StorageTiers(ram_bytes=hot_rows * row_bytes, policy=tier_policy)
    made = {name: make() for name, make in policies.items()}
    copies, real = [], updater_module.update_by_copies
    monkeypatch.setattr(updater_module, "update_by_copies", lambda *a: copies.append(1) or real(*a))
    tiered = _train(tiers, rule, **made)
    if hot_rows == 400:
        assert not copies
    expected, state = in_ram.state_dict(), tiered.state_dict()
    assert state.keys() == expected.keys()
    for name, array in expected.items():
        np.testing.assert_array_equal(state[name], array, err_msg=name)
    assert len(tiered) > 4 * hot_rows
    stats = tiered.stats()["tiers"]
    assert stats["ram"]["rows"] <= hot_rows and stats["ram"]["budget_bytes"] == tiers.ram_bytes
    assert stats["ram"]["bytes"] <= tiers.ram_bytes + tiered.store.block_bytes
    assert stats["disk"]["bytes"] >= len(tiered) * row_bytes
    assert stats["promotions"] > 0 and stats["demotions"] > 0
    assert 0 < stats["hit_rate"] < 1 and stats["hits"] + stats["misses"] > 30 * 100
    assert tiered.stats()["row_bytes"] == stats["ram"]["bytes"] + stats["ram"]["index_bytes"]


def test_state_loads_into_either_layout():
    source = _train(StorageTiers(ram_bytes=2000), Adam(), steps=10)
    state = source.state_dict()
    for storage in (None, StorageTiers(ram_bytes=3000, policy="lfu")):
        target = EmbeddingTable("clicks", dim=8, block_rows=16, storage=storage)
        SparseUpdater(Adam(), [target])
        target.load_state_dict(state)
        for name, array in target.state_dict().items():
            np.testing.assert_array_equal(array, state[name], err_msg=name)


def test_clearing_drops_both_tiers_and_the_old_files(tmp_path):
    table = EmbeddingTable(
        "clicks", dim=2, block_rows=4, storage=StorageTiers(ram_bytes=24, directory=str(tmp_path))
    )
    table.lookup(np.arange(10))
    (old,) = tmp_path.iterdir()
    table.ids.clear()
    table.store.clear()
    (new,) = tmp_path.iterdir()
    assert new != old and table.store.capacity == 0 and table.store.residency.num_hot == 0
    rows = table.lookup(np.array([7, 8])).rows
    assert table.gather(rows).tolist() == [[0, 0], [0, 0]] and table.store.residency.num_hot == 2

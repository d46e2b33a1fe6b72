"""EmbeddingTable: per-id initial values, reuse of erased rows, export."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from recis.core.errors import TableFullError
from recis.core.initializers import NormalInitializer, UniformInitializer
from recis.core.policies import CapacityEviction, FrequencyAdmission
from recis.core.table import EmbeddingTable


def _table(**kwargs):
    options = {"initializer": NormalInitializer(std=0.1), "seed": 3, "block_rows": 16}
    return EmbeddingTable("item", dim=4, **(options | kwargs))


def test_initial_values_do_not_depend_on_order_or_batch_split():
    ids = np.random.default_rng(0).integers(-(2**62), 2**62, 300)
    whole = _table()
    expected = whole.gather(whole.find_or_insert(ids).rows)
    shuffled, split = _table(), _table()
    order = np.random.default_rng(1).permutation(ids.size)
    shuffled.find_or_insert(ids[order])
    for part in np.array_split(ids[::-1], 7):
        split.find_or_insert(part)
    for table in (shuffled, split):
        np.testing.assert_array_equal(table.gather(table.find(ids)), expected)
    np.testing.assert_array_equal(expected, whole.initial_values(ids))


def test_erased_rows_are_reused_with_fresh_values_and_slots():
    table = _table()
    table.store.add_slot("count", (), np.int64, fill=0)
    rows = table.find_or_insert(np.array([1, 2, 3])).rows
    table.store.scatter(rows, np.full((3, 4), 9.0))
    table.store.scatter(rows, np.array([5, 6, 7]), "count")
    assert table.erase(np.array([2])).tolist() == [1]
    new_row = table.find_or_insert(np.array([42])).rows
    assert new_row.tolist() == [1]
    np.testing.assert_array_equal(table.gather(new_row), table.initial_values(np.array([42])))
    assert table.store.gather(new_row, "count").tolist() == [0]
    assert table.store.gather(rows[[0, 2]], "count").tolist() == [5, 7]


def test_missing_ids_read_as_zeros_without_inserting():
    table = _table()
    table.find_or_insert(np.array([1]))
    values = table.gather(table.find(np.array([1, 99])))
    assert values[1].tolist() == [0.0] * 4 and np.abs(values[0]).sum() > 0
    assert len(table) == 1


def test_bfloat16_storage_returns_float32_lookups():
    table = _table(dtype=ml_dtypes.bfloat16, initializer=UniformInitializer(-1, 1))
    rows = table.find_or_insert(np.arange(10)).rows
    values = table.gather(rows)
    assert values.dtype == np.float32
    exact = table.initial_values(np.arange(10))
    np.testing.assert_allclose(values, exact, rtol=2**-8)
    assert not np.array_equal(values, exact)


def test_state_dict_lists_ids_with_their_rows_and_slots():
    table = _table()
    table.store.add_slot("seen", (), np.int64, fill=-1)
    ids = np.array([30, -4, 0, 7])
    table.find_or_insert(ids)
    table.erase(np.array([-4]))
    state = table.state_dict()
    assert state["id"].tolist() == [30, 0, 7] and state["tag"].tolist() == [0, 0, 0]
    assert state["row"].tolist() == [0, 2, 3] and state["rows.free"].tolist() == [1]
    np.testing.assert_array_equal(state["embedding"], table.initial_values(state["id"]))
    assert state["seen"].tolist() == [-1, -1, -1]


def test_state_dict_round_trip_keeps_rows_values_and_policies():
    def make():
        table = _table(
            eviction=CapacityEviction(max_size=5, policy="lfu"), admission=FrequencyAdmission(2)
        )
        table.store.add_slot("moment", (4,))
        return table

    table = make()
    for ids in ([1, 2, 3], [1, 2, 3, 4], [5, 6, 4]):
        table.lookup(np.array(ids))
    table.store.scatter(table.find(np.array([1])), np.full((1, 4), 7.0), "moment")
    restored = make()
    restored.load_state_dict(table.state_dict())
    for name, value in table.state_dict().items():
        np.testing.assert_array_equal(restored.state_dict()[name], value, err_msg=name)
    # both continue identically: same admissions, same eviction victims, same rows
    for ids in ([7, 7, 8], [8, 9, 1], [10, 9]):
        a, b = table.lookup(np.array(ids)), restored.lookup(np.array(ids))
        np.testing.assert_array_equal(a.rows, b.rows)
        assert a.stats == b.stats
    with pytest.raises(KeyError, match="'item': the state has fields this table lacks"):
        _table().load_state_dict(table.state_dict())
    plain = _table()
    plain.load_state_dict(table.state_dict(), strict=False)  # e.g. for inference
    np.testing.assert_array_equal(plain.state_dict()["embedding"], table.state_dict()["embedding"])
    richer = make()
    richer.store.add_slot("extra")
    with pytest.raises(KeyError, match=r"'item': the state lacks \['extra'\]"):
        richer.load_state_dict(table.state_dict())


def test_max_size_error_names_the_table():
    table = _table(max_size=2)
    with pytest.raises(TableFullError, match="'item' is full"):
        table.find_or_insert(np.arange(3))


def test_stats_report_memory():
    table = _table()
    table.find_or_insert(np.arange(100))
    stats = table.stats()
    assert stats["size"] == 100 and stats["row_blocks"] == 7
    assert stats["bytes"] == table.ids.nbytes + 7 * 16 * 4 * 4


def test_merged_logical_tables_keep_their_ids_and_initial_values_apart():
    merged = _table(children=["user", "item"])
    ids = np.array([2**63 - 1, 2**63 - 1, -5])
    rows = merged.find_or_insert(ids, tags=np.array([0, 1, 1])).rows
    assert rows.tolist() == [0, 1, 2]
    user, item = _table(), _table()
    user.children, item.children = ["user"], ["item"]
    expected = np.concatenate([user.initial_values(ids[:1]), item.initial_values(ids[1:])])
    np.testing.assert_array_equal(merged.gather(rows), expected)
    assert not np.array_equal(expected[0], expected[1])
    assert merged.find(np.array([-5]), tags=0).tolist() == [-1]

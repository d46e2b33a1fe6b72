"""The change log of an engine table: writes, inserts and erasures since a clock."""

from __future__ import annotations

import numpy as np
import pytest

from recis.core.optim import SGD
from recis.core.optim.updater import SparseUpdater
from recis.core.row_changes import ChangesForgottenError
from recis.core.table import EmbeddingTable


def test_rows_written_since_a_tick_are_those_inserted_updated_or_reused():
    table = EmbeddingTable("t", dim=2, block_rows=4)
    table.find_or_insert(np.array([1, 2, 3]))
    changes = table.track_changes()
    assert table.track_changes() is changes
    first = changes.tick()
    assert changes.rows_since(first).tolist() == []
    updater = SparseUpdater(SGD(), [table])
    updater.accumulate(table, table.find(np.array([2])), np.ones((1, 2), np.float32))
    updater.step(lr=0.1)
    table.erase(np.array([1]))
    table.find_or_insert(np.array([7, 8]))  # 7 reuses id 1's row
    rows = changes.rows_since(first)
    assert sorted(changes.row_ids[rows].tolist()) == [2, 7, 8]
    assert changes.erased_since(first)[0].tolist() == [1]
    second = changes.tick()
    table.erase(np.array([8]))
    assert changes.rows_since(second).tolist() == []  # 8 is gone: nothing to copy
    assert changes.erased_since(second)[0].tolist() == [8]
    changes.forget(second)
    with pytest.raises(ChangesForgottenError, match="forgotten"):
        changes.erased_since(first)


def test_tags_of_logical_tables_are_remembered_per_row():
    table = EmbeddingTable("a+b", dim=1, children=["a", "b"])
    changes = table.track_changes()
    clock = changes.tick()
    table.find_or_insert(np.array([5, 5, 6]), tags=np.array([0, 1, 1]))
    rows = changes.rows_since(clock)
    pairs = sorted(
        zip(changes.row_ids[rows].tolist(), changes.row_tags[rows].tolist(), strict=True)
    )
    assert pairs == [(5, 0), (5, 1), (6, 1)]


def test_restoring_a_table_ends_its_change_log():
    table = EmbeddingTable("t", dim=2)
    table.find_or_insert(np.array([1]))
    table.track_changes()
    table.load_state_dict(table.state_dict())
    assert table.changes is None

"""Admission and eviction, step by step."""

from __future__ import annotations

import numpy as np
import pytest

from recis.core.errors import TableFullError
from recis.core.initializers import UniformInitializer
from recis.core.optim import Adagrad
from recis.core.optim.updater import SparseUpdater
from recis.core.policies import CapacityEviction, FrequencyAdmission, GlobalStepEviction, ReadOnly
from recis.core.table import EmbeddingTable


def _table(**policies):
    return EmbeddingTable("t", 2, UniformInitializer(-1, 1), seed=1, block_rows=4, **policies)


def _ids(table):
    return sorted(table.ids.export().keys.tolist())


def test_read_only_never_inserts_and_reads_zeros():
    table = _table(admission=ReadOnly())
    table.find_or_insert(np.array([1]))  # explicit inserts still work
    lookup = table.lookup(np.array([1, 2]))
    assert lookup.rows.tolist() == [0, -1]
    assert lookup.values[1].tolist() == [0.0, 0.0]
    np.testing.assert_array_equal(lookup.values[0], table.initial_values(np.array([1]))[0])
    assert lookup.stats.as_dict() == {"new": 1, "admitted": 0, "refused": 1, "evicted": 0}
    assert _ids(table) == [1]


def test_frequency_admission_counts_every_occurrence():
    table = _table(admission=FrequencyAdmission(threshold=3))
    first = table.lookup(np.array([7, 8]), counts=np.array([2, 1]))
    assert first.rows.tolist() == [-1, -1] and first.stats.refused == 2
    np.testing.assert_array_equal(first.values, table.initial_values(np.array([7, 8])))
    second = table.lookup(np.array([7, 8]))
    assert second.rows.tolist() == [0, -1]
    assert second.stats.as_dict() == {"new": 2, "admitted": 1, "refused": 1, "evicted": 0}
    assert table.admission.pending() == 1
    third = table.lookup(np.array([8, 7]))
    assert third.rows.tolist() == [1, 0] and third.stats.new == 1
    assert table.admission.pending() == 0


def test_frequency_admission_state_round_trip():
    admission = FrequencyAdmission(threshold=2)
    admission.admit(np.array([5, 6]), np.array([0, 1]), np.array([1, 1]))
    restored = FrequencyAdmission(threshold=2)
    restored.load_state(admission.state())
    assert restored.admit(np.array([6, 5]), np.array([1, 0]), np.array([1, 1])).tolist() == [
        True,
        True,
    ]


def test_evaluation_lookups_never_insert():
    table = _table()
    lookup = table.lookup(np.array([3]), train=False)
    assert lookup.rows.tolist() == [-1] and len(table) == 0
    assert lookup.values.tolist() == [[0.0, 0.0]]


def test_global_step_eviction_drops_stale_ids_and_resets_their_slots():
    eviction = GlobalStepEviction(filter_step=2)
    table = _table(eviction=eviction)
    optimizer = SparseUpdater(Adagrad(initial_accumulator_value=0.5), [table])
    for step, ids in enumerate([[1, 2], [2], [3], [3], [2, 4]]):
        lookup = table.lookup(np.array(ids))
        optimizer.accumulate(table, lookup.rows, np.ones((len(ids), 2), np.float32))
        optimizer.step(lr=0.1)
        assert table.store.gather(lookup.rows, "step_filter").tolist() == [step] * len(ids)
        eviction.advance()
    # the clock is at 5: ids last seen before step 3 (only id 1, at step 0) are stale
    assert table.evict_stale() == 1 and _ids(table) == [2, 3, 4]
    assert table.evict_stale() == 0
    reused = table.lookup(np.array([9])).rows
    assert reused.tolist() == [0]  # id 1's row, reset
    np.testing.assert_array_equal(table.gather(reused), table.initial_values(np.array([9])))
    assert table.store.gather(reused, "sum").tolist() == [[0.5, 0.5]]
    assert table.stats_total.evicted == 1


@pytest.mark.parametrize("policy", ["lru", "lfu"])
def test_capacity_eviction_picks_least_recently_or_frequently_used(policy):
    table = _table(eviction=CapacityEviction(max_size=3, policy=policy))
    table.lookup(np.array([1, 2, 3]), counts=np.array([5, 1, 1]))
    table.lookup(np.array([2]))  # 2 is the most recent; 1 the most frequent
    lookup = table.lookup(np.array([4, 3]))
    assert lookup.stats.evicted == 1
    victim = 1 if policy == "lru" else 2
    assert _ids(table) == sorted({1, 2, 3, 4} - {victim})
    assert lookup.rows[0] == {1: 0, 2: 1}[victim]  # the victim's row is reused
    np.testing.assert_array_equal(lookup.values[0], table.initial_values(np.array([4]))[0])


def test_capacity_eviction_never_evicts_ids_of_the_current_lookup():
    table = _table(eviction=CapacityEviction(max_size=2))
    table.lookup(np.array([1, 2]))
    lookup = table.lookup(np.array([1, 3]))  # 2 goes although 1 is older: 1 is in use
    assert _ids(table) == [1, 3] and lookup.stats.evicted == 1
    with pytest.raises(TableFullError, match="'t': 2 new ids do not fit in max_size 2"):
        table.lookup(np.array([1, 5, 6]))


def test_eviction_ties_go_to_lower_rows():
    table = _table(eviction=CapacityEviction(max_size=4, policy="lfu"))
    table.lookup(np.array([10, 11, 12, 13]))
    table.lookup(np.array([20, 21]))
    assert _ids(table) == [12, 13, 20, 21]


def test_policy_arguments_are_checked():
    with pytest.raises(ValueError, match="threshold must be >= 1"):
        FrequencyAdmission(0)
    with pytest.raises(ValueError, match="policy must be 'lru' or 'lfu'"):
        CapacityEviction(max_size=3, policy="fifo")
    with pytest.raises(ValueError, match="keeps no state"):
        ReadOnly().load_state({"x": np.zeros(1)})

"""IdMap against a Python dict, its kernels against their NumPy twins, and its limits."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from recis.core.errors import TableFullError
from recis.core.id_map import IdMap
from recis.core.kernels import id_map as kernels

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
EXTREME_KEYS = [INT64_MIN, INT64_MIN + 1, -1, 0, 1, INT64_MAX - 1, INT64_MAX]
keys_strategy = st.lists(
    st.one_of(
        st.sampled_from(EXTREME_KEYS),
        st.integers(-20, 20),
        st.integers(INT64_MIN, INT64_MAX),
    ),
    max_size=40,
)


class IdMapAgainstDict(RuleBasedStateMachine):
    """Random insert/find/erase sequences; rows must agree with a dict-based model."""

    def __init__(self):
        super().__init__()
        self.map = IdMap("model", capacity=16)
        self.model: dict[int, int] = {}
        self.free: list[int] = []
        self.high_water = 0

    def _model_allocate(self) -> int:
        if self.free:
            return self.free.pop()
        self.high_water += 1
        return self.high_water - 1

    @rule(keys=keys_strategy)
    def find_or_insert(self, keys):
        result = self.map.find_or_insert(np.array(keys, np.int64))
        expected_new = [k not in self.model for k in keys]
        for key in keys:
            if key not in self.model:
                self.model[key] = self._model_allocate()
        assert result.rows.tolist() == [self.model[k] for k in keys]
        assert result.is_new.tolist() == expected_new
        assert result.new_keys.tolist() == list(
            dict.fromkeys(k for k, new in zip(keys, expected_new, strict=True) if new)
        )

    @rule(keys=keys_strategy)
    def find(self, keys):
        rows = self.map.find(np.array(keys, np.int64))
        assert rows.tolist() == [self.model.get(k, -1) for k in keys]

    @rule(keys=keys_strategy)
    def erase(self, keys):
        rows = self.map.erase(np.array(keys, np.int64))
        expected = [self.model.get(k, -1) for k in keys]
        assert rows.tolist() == expected
        for key in dict.fromkeys(keys):
            if key in self.model:
                self.free.append(self.model.pop(key))

    @invariant()
    def same_contents(self):
        assert len(self.map) == len(self.model)
        keys, rows = self.map.export()
        assert dict(zip(keys.tolist(), rows.tolist(), strict=True)) == self.model
        assert self.map.load_factor <= self.map.max_load


TestIdMapAgainstDict = IdMapAgainstDict.TestCase
TestIdMapAgainstDict.settings = settings(
    max_examples=60, stateful_step_count=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)  # fmt: skip


def test_growth_keeps_every_entry():
    rng = np.random.default_rng(0)
    keys = np.unique(rng.integers(INT64_MIN, INT64_MAX, 50_000, dtype=np.int64, endpoint=True))
    keys = np.concatenate([keys, np.array(EXTREME_KEYS)])
    keys = keys[np.sort(np.unique(keys, return_index=True)[1])]
    table = IdMap("grow", capacity=16)
    rows = np.concatenate([table.find_or_insert(part).rows for part in np.array_split(keys, 37)])
    assert table.capacity > 16 and len(table) == keys.size
    np.testing.assert_array_equal(rows, np.arange(keys.size))
    np.testing.assert_array_equal(table.find(keys), rows)


def test_rows_of_erased_keys_are_reused_last_released_first():
    table = IdMap("reuse")
    table.find_or_insert(np.arange(1, 6))
    assert table.erase(np.array([2, 4, 99])).tolist() == [1, 3, -1]
    assert table.find_or_insert(np.array([7, 8, 9])).rows.tolist() == [3, 1, 5]


def test_max_size_is_a_clear_error_and_inserts_nothing():
    table = IdMap("user_emb", max_size=3)
    table.find_or_insert(np.array([1, 2]))
    with pytest.raises(TableFullError, match="'user_emb' is full"):
        table.find_or_insert(np.array([3, 4, 1]))
    assert len(table) == 2 and table.find(np.array([3, 4])).tolist() == [-1, -1]
    assert table.find_or_insert(np.array([3, 3, 2])).rows.tolist() == [2, 2, 1]


def test_memory_per_key_at_default_maximum_load():
    table = IdMap("mem", capacity=1 << 16)
    table.find_or_insert(np.arange(1, int(table.capacity * table.max_load) + 1))
    assert table.load_factor == pytest.approx(0.5)
    assert table.stats()["bytes_per_key"] <= 40
    assert table.nbytes == table.capacity * 16


def test_uint64_keys_are_reinterpreted_bitwise():
    table = IdMap()
    big = np.array([2**64 - 1, 2**63], np.uint64)
    table.find_or_insert(big)
    assert table.find(np.array([-1, INT64_MIN])).tolist() == [0, 1]


def test_clear_forgets_everything():
    table = IdMap(capacity=16)
    table.find_or_insert(np.arange(100))
    table.clear()
    assert len(table) == 0 and table.capacity == 16
    assert table.find(np.arange(100)).max() == -1
    assert table.find_or_insert(np.array([5])).rows.tolist() == [0]


@pytest.mark.parametrize("bad", [np.zeros((2, 2), np.int64), np.array([1.5]), [1, 2]])
def test_bad_keys_are_rejected(bad):
    with pytest.raises(TypeError, match="keys must be a 1-D integer array"):
        IdMap().find(bad) if not isinstance(bad, list) else IdMap().find(np.array(bad, float))


def _filled_slots(capacity, count, seed):
    rng = np.random.default_rng(seed)
    keys = np.unique(rng.integers(INT64_MIN, INT64_MAX, count, dtype=np.int64))
    keys = keys[keys != 0]
    shift = 65 - capacity.bit_length()
    slots = np.zeros((capacity, 2), np.int64)
    kernels.insert_new_reference(slots, shift, keys, np.arange(keys.size), 1)
    return slots, shift, keys


@pytest.mark.parametrize("regions", [1, 2, 4])
def test_insert_new_kernel_matches_twin(regions):
    capacity = 1 << 12
    rng = np.random.default_rng(regions)
    keys = np.unique(rng.integers(-(2**40), 2**40, 1800))
    keys = rng.permutation(keys[keys != 0])
    rows = rng.permutation(keys.size)
    fast, twin = np.zeros((capacity, 2), np.int64), np.zeros((capacity, 2), np.int64)
    kernels.insert_new(fast, 52, keys, rows, regions)
    kernels.insert_new_reference(twin, 52, keys, rows, regions)
    assert _as_dict(fast) == _as_dict(twin) == dict(zip(keys.tolist(), rows.tolist(), strict=True))
    out_fast, out_twin = np.empty(keys.size, np.int64), np.empty(keys.size, np.int64)
    kernels.find(fast, 52, -1, keys, out_fast)
    kernels.find_reference(fast, 52, -1, keys, out_twin)
    np.testing.assert_array_equal(out_fast, rows)
    np.testing.assert_array_equal(out_twin, rows)


def test_find_erase_and_rehash_kernels_match_twins():
    slots, shift, keys = _filled_slots(1 << 10, 400, seed=3)
    probe = np.concatenate([keys[::3], np.array([0, 5, -5])])
    found = [np.empty(probe.size, np.int64) for _ in range(2)]
    kernels.find(slots, shift, 77, probe, found[0])
    kernels.find_reference(slots, shift, 77, probe, found[1])
    np.testing.assert_array_equal(found[0], found[1])
    assert found[0][-3:].tolist() == [77, -1, -1]

    erased, twin_slots = [np.empty(probe.size - 1, np.int64) for _ in range(2)], slots.copy()
    kernels.erase(slots, shift, probe[:-1][probe[:-1] != 0], erased[0][:-1])
    kernels.erase_reference(twin_slots, shift, probe[:-1][probe[:-1] != 0], erased[1][:-1])
    np.testing.assert_array_equal(erased[0][:-1], erased[1][:-1])
    np.testing.assert_array_equal(slots, twin_slots)

    bigger = [np.zeros((1 << 11, 2), np.int64) for _ in range(2)]
    kernels.rehash(slots, bigger[0], shift - 1, 2)
    kernels.rehash_reference(slots, bigger[1], shift - 1, 2)
    assert _as_dict(bigger[0]) == _as_dict(bigger[1]) == _as_dict(slots)


def test_hash_key_twin_matches_kernel():
    keys = np.unique(np.array(EXTREME_KEYS + list(range(-50, 50)), np.int64))
    expected = kernels.hash_key_reference(keys)
    got = np.array([_hash_scalar(k) for k in keys], np.uint64)
    np.testing.assert_array_equal(got, expected)
    assert np.unique(expected).size == keys.size


def _hash_scalar(key):
    import numba

    @numba.njit
    def one(k):
        return kernels.hash_key(k)

    return one(np.int64(key))


def _as_dict(slots):
    live = slots[:, 0] != 0
    return dict(zip(slots[live, 0].tolist(), slots[live, 1].tolist(), strict=True))

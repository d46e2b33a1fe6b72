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
        keys_array = np.array(keys, np.int64)
        result = self.map.find_or_insert(keys_array)
        expected_new = [k not in self.model for k in keys]
        for key in keys:
            if key not in self.model:
                self.model[key] = self._model_allocate()
        assert result.rows.tolist() == [self.model[k] for k in keys]
        assert result.is_new.tolist() == expected_new
        assert keys_array[result.new_positions].tolist() == list(
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
        keys, tags, rows = self.map.export()
        assert dict(zip(keys.tolist(), rows.tolist(), strict=True)) == self.model
        assert not tags.any()
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


def test_tags_keep_merged_tables_apart():
    table = IdMap("merged", capacity=16)
    keys = np.array([5, 5, 5, -1, 0, 0])
    tags = np.array([0, 1, 2, 1, 0, 3])
    assert table.find_or_insert(keys, tags).rows.tolist() == [0, 1, 2, 3, 4, 5]
    assert table.find(np.array([5, 5, 0, 0, -1]), np.array([2, 3, 3, 1, 1])).tolist() == [
        2,
        -1,
        5,
        -1,
        3,
    ]
    assert table.find(np.array([5, -1]), tags=1).tolist() == [1, 3]
    assert table.erase(np.array([5]), tags=1).tolist() == [1]
    assert table.find(keys, tags).tolist() == [0, -1, 2, 3, 4, 5]
    entries = table.export()
    triples = zip(entries.keys.tolist(), entries.tags.tolist(), entries.rows.tolist(), strict=True)
    assert sorted(triples) == [
        (-1, 1, 3), (0, 0, 4), (0, 3, 5), (5, 0, 0), (5, 2, 2),
    ]  # fmt: skip
    with pytest.raises(ValueError, match="tags must lie in"):
        table.find(np.array([1]), tags=1 << 15)


def _random_pairs(rng, count):
    keys = rng.integers(-(2**40), 2**40, count)
    keys[:8] = [INT64_MIN, INT64_MAX, 0, 0, -1, -1, 1, 1]
    tags = rng.integers(0, 4, count)
    _, first = np.unique(np.stack([keys, tags], 1), axis=0, return_index=True)
    first = rng.permutation(first)
    return keys[first], tags[first]


@pytest.mark.parametrize("regions", [1, 2, 4])
def test_insert_new_and_find_kernels_match_twins(regions):
    capacity, shift = 1 << 12, 52
    rng = np.random.default_rng(regions)
    keys, tags = _random_pairs(rng, 1800)
    rows = rng.permutation(keys.size)
    fast, twin = np.zeros((capacity, 2), np.int64), np.zeros((capacity, 2), np.int64)
    kernels.insert_new(fast, shift, keys, tags, 1, rows, regions)
    kernels.insert_new_reference(twin, shift, keys, tags, 1, rows, regions)
    expected = dict(zip(zip(keys.tolist(), tags.tolist(), strict=True), rows.tolist(), strict=True))
    assert _as_dict(fast) == _as_dict(twin) == expected
    probe_keys = np.concatenate([keys, keys[:50]])
    probe_tags = np.concatenate([tags, (tags[:50] + 1) % 5])
    found = [np.empty(probe_keys.size, np.int64) for _ in range(2)]
    kernels.find(fast, shift, probe_keys, probe_tags, 1, found[0])
    kernels.find_reference(fast, shift, probe_keys, probe_tags, 1, found[1])
    np.testing.assert_array_equal(found[0], found[1])
    np.testing.assert_array_equal(found[0][: keys.size], rows)


def test_erase_and_rehash_kernels_match_twins():
    capacity, shift = 1 << 10, 54
    rng = np.random.default_rng(3)
    keys, tags = _random_pairs(rng, 450)
    slots = np.zeros((capacity, 2), np.int64)
    kernels.insert_new(slots, shift, keys, tags, 1, np.arange(keys.size), 2)
    twin_slots = slots.copy()
    victims = np.concatenate([keys[::3], np.array([12345])])
    victim_tags = np.concatenate([tags[::3], np.array([0])])
    erased = [np.empty(victims.size, np.int64) for _ in range(2)]
    kernels.erase(slots, shift, victims, victim_tags, 1, erased[0])
    kernels.erase_reference(twin_slots, shift, victims, victim_tags, 1, erased[1])
    np.testing.assert_array_equal(erased[0], erased[1])
    assert erased[0][-1] == -1 and _as_dict(slots) == _as_dict(twin_slots)
    left = [np.empty(keys.size, np.int64) for _ in range(2)]
    kernels.find(slots, shift, keys, tags, 1, left[0])  # probing still works after back-shifts
    kernels.find_reference(slots, shift, keys, tags, 1, left[1])
    np.testing.assert_array_equal(left[0], left[1])


def _keys_homed_in(rng, homes, count, shift):
    """``count`` distinct keys (tag 0) whose home slot lies in ``homes``."""
    candidates = rng.integers(INT64_MIN, INT64_MAX, 3_000_000, dtype=np.int64)
    home = kernels.home_slot_reference(candidates, np.zeros_like(candidates), shift)
    return np.unique(candidates[np.isin(home, homes)])[:count]


@pytest.mark.parametrize(
    ("load", "factor", "cluster", "regions"),
    [
        (0.5, 2, None, 1),
        (0.5, 2, None, 4),
        (0.75, 2, None, 4),
        (0.95, 2, None, 2),
        (0.6, 8, None, 4),
        (0.3, 2, "start", 1),  # homed in the first slots: most must wait to be placed last
        (0.3, 2, "start", 4),
        (0.05, 2, "spill", 2),  # clusters crossing a wave's chunks, and wrapping around the end
        (0.05, 4, "spill", 4),
    ],
)
def test_grow_in_place_kernel_matches_twin_and_keeps_probe_chains(load, factor, cluster, regions):
    capacity = 1 << (10 if cluster is None else 13)
    shift = 65 - capacity.bit_length()
    rng = np.random.default_rng(int(load * 100) + factor + regions)
    keys, tags = _random_pairs(rng, int(capacity * load))
    if cluster == "start":
        keys = _keys_homed_in(rng, np.arange(4), 200, shift)
    if cluster == "spill":  # homed at the end of the top wave's first chunk, and of the table
        ends = capacity // 2 + capacity // (2 * regions) - 1, capacity - 1
        homes = np.concatenate([np.arange(end - 3, end + 1) for end in ends])
        keys = _keys_homed_in(rng, homes, 700, shift)
        assert keys.size > 600  # more than a chunk can note: it is searched for them
    if cluster is not None:
        tags = rng.integers(0, 3, keys.size)
    rows = rng.permutation(keys.size)
    slots = np.zeros((capacity, 2), np.int64)
    kernels.insert_new(slots, shift, keys, tags, 1, rows, 2)
    before = _as_dict(slots)
    grown = [np.zeros((capacity * factor, 2), np.int64) for _ in range(2)]
    twins = (kernels.grow_in_place, kernels.grow_in_place_reference)
    new_shift = shift - factor.bit_length() + 1
    for grow, bigger in zip(twins, grown, strict=True):
        bigger[:capacity] = slots
        grow(bigger, capacity, new_shift, regions)
    assert _as_dict(grown[0]) == _as_dict(grown[1]) == before
    # linear probing leaves the same slots occupied whatever the order of the inserts
    np.testing.assert_array_equal(grown[0][:, 1] != 0, grown[1][:, 1] != 0)
    probe_keys, probe_tags = np.concatenate([keys, [12345]]), np.concatenate([tags, [9]])
    found = np.empty(probe_keys.size, np.int64)
    kernels.find(grown[0], new_shift, probe_keys, probe_tags, 1, found)
    np.testing.assert_array_equal(found, np.append(rows, -1))


def test_touch_pages_kernel_matches_twin_and_changes_no_slot():
    slots = [np.zeros((5000, 2), np.int64) for _ in range(2)]
    for array in slots:
        array[:700] = np.arange(1400).reshape(700, 2) + 1
    kernels.touch_pages(slots[0], 700, 256)
    kernels.touch_pages_reference(slots[1], 700, 256)
    np.testing.assert_array_equal(slots[0], slots[1])
    np.testing.assert_array_equal(slots[0][:700].ravel(), np.arange(1400) + 1)
    assert not slots[0][700:].any()


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
    return kernels._as_dict_reference(slots)


@pytest.mark.parametrize("regions", [1, 2, 4])
def test_one_probe_find_or_insert_kernels_match_twins(regions):
    capacity, shift = 1 << 12, 52
    rng = np.random.default_rng(10 + regions)
    present, present_tags = _random_pairs(rng, 600)
    batch = np.concatenate([present[:200], rng.integers(-50, 50, 900), present[:50]])
    batch_tags = rng.integers(0, 4, batch.size)
    batch_tags[:200] = present_tags[:200]
    batch_tags[-50:] = present_tags[:50]
    results = []
    for find_or_place, rank, settle in (
        (kernels.find_or_place, kernels.rank_first_occurrences, kernels.settle),
        (
            kernels.find_or_place_reference,
            kernels.rank_first_occurrences_reference,
            kernels.settle_reference,
        ),
    ):
        slots = np.zeros((capacity, 2), np.int64)
        kernels.insert_new(slots, shift, present, present_tags, 1, np.arange(present.size), 1)
        rows, first, slot_of = (np.empty(batch.size, np.int64) for _ in range(3))
        find_or_place(slots, shift, batch, batch_tags, 1, regions, rows, first, slot_of)
        positions = np.empty(batch.size, np.int64)
        count = rank(first, positions)
        new_rows = np.arange(1000, 1000 + count)
        settle(slots, batch_tags, 1, first, positions[:count], slot_of, new_rows, rows)
        results.append((rows, positions[:count], _as_dict(slots)))
    (rows, positions, table), (twin_rows, twin_positions, twin_table) = results
    np.testing.assert_array_equal(rows, twin_rows)
    np.testing.assert_array_equal(positions, twin_positions)
    assert table == twin_table
    pairs = list(zip(batch.tolist(), batch_tags.tolist(), strict=True))
    keys = zip(present.tolist(), present_tags.tolist(), strict=True)
    expected = dict(zip(keys, range(present.size), strict=True))
    for pair in pairs:
        expected.setdefault(pair, 1000 + len(expected) - present.size)
    assert rows.tolist() == [expected[p] for p in pairs]

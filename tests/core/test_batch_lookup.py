"""The batch lookup that deduplicates while probing the id map: its kernels against their twins,
and its results against deduplicating first and looking up the distinct ids."""

import numpy as np
import pytest

from recis.core.dedupe import first_occurrences
from recis.core.id_map import IdMap
from recis.core.initializers import UniformInitializer
from recis.core.kernels import batch_lookup as kernels
from recis.core.kernels import id_map as id_map_kernels
from recis.core.policies import AdmitAll, CapacityEviction, FrequencyAdmission
from recis.core.table import EmbeddingTable
from recis.core.tiers import StorageTiers


def _batch(rng, present, present_tags, size):
    """Present pairs, new pairs and repeats of both, shuffled."""
    picks = rng.integers(0, present.size, size // 2)
    keys = np.concatenate([present[picks], rng.integers(-60, 60, size - picks.size)])
    tags = np.concatenate([present_tags[picks], rng.integers(0, 3, size - picks.size)])
    order = rng.permutation(size)
    return keys[order], tags[order]


@pytest.mark.parametrize("regions", [1, 2, 4])
def test_kernels_match_twins_with_probes_past_region_ends(regions):
    # a load of ~0.7 makes probes run past region ends, into the serial pass
    capacity, shift = 1 << 10, 55
    rng = np.random.default_rng(regions)
    present = np.unique(rng.integers(-(2**40), 2**40, 600))
    present_tags = rng.integers(0, 3, present.size)
    keys, tags = _batch(rng, present, present_tags, 500)
    results = []
    for find_or_mark, rank_leaders, unmark in (
        (kernels.find_or_mark, kernels.rank_leaders, kernels.unmark),
        (kernels.find_or_mark_reference, kernels.rank_leaders_reference, kernels.unmark_reference),
    ):
        slots = np.zeros((capacity, 2), np.int64)
        rows = np.arange(present.size)
        id_map_kernels.insert_new(slots, shift, present, present_tags, 1, rows, 1)
        found, leader, slot_of, positions, index = (np.full(keys.size, -7) for _ in range(5))
        find_or_mark(slots, shift, keys, tags, 1, regions, found, leader, slot_of)
        assert (slots[:, 1] < 0).sum() == np.unique(np.stack([keys, tags]), axis=1).shape[1]
        count = rank_leaders(leader, positions, index)
        distinct_rows = found[positions[:count]]
        new = distinct_rows < 0
        distinct_rows[new] = 10_000 + np.arange(new.sum())
        unmark(slots, tags, 1, positions[:count], slot_of, distinct_rows)
        results.append((leader, positions[:count], index, distinct_rows, _as_dict(slots)))
    for fast, twin in zip(*results, strict=True):
        if isinstance(fast, dict):
            assert fast == twin
        else:
            np.testing.assert_array_equal(fast, twin)
    leader, positions, index, distinct_rows, table = results[0]
    first, inverse = first_occurrences(keys, tags)
    np.testing.assert_array_equal(positions, first)
    np.testing.assert_array_equal(index, inverse)
    np.testing.assert_array_equal(leader, first[inverse])
    pairs = zip(keys[first].tolist(), tags[first].tolist(), strict=True)
    assert [table[pair] for pair in pairs] == distinct_rows.tolist()
    assert (distinct_rows[: present.size] < 10_000).any() and (distinct_rows >= 10_000).any()


def _as_dict(slots):
    assert (slots[:, 1] >= 0).all(), "a placeholder was left behind"
    return id_map_kernels._as_dict_reference(slots)


def test_id_map_batch_equals_dedupe_then_find_or_insert():
    rng = np.random.default_rng(0)
    fused, plain = IdMap(capacity=1 << 12), IdMap(capacity=1 << 12)
    for step in range(6):
        keys = rng.integers(0, 400, 300) * 7919 - 1000
        tags = rng.integers(0, 2, keys.size)
        found = fused.find_or_insert_batch(keys, tags)
        first, inverse = first_occurrences(keys, tags)
        expected = plain.find_or_insert(keys[first], tags[first])
        np.testing.assert_array_equal(found.positions, first)
        np.testing.assert_array_equal(found.index, inverse)
        np.testing.assert_array_equal(found.rows, expected.rows)
        np.testing.assert_array_equal(found.is_new, expected.is_new)
        np.testing.assert_array_equal(found.new_rows, expected.new_rows)
        if step == 2:
            erased = keys[first][::5]
            fused.erase(erased, tags[first][::5])
            plain.erase(erased, tags[first][::5])
    assert sorted(zip(*fused.export(), strict=True)) == sorted(zip(*plain.export(), strict=True))


def test_id_map_batch_grows_as_find_or_insert_and_declines_past_max_size():
    fused, plain = IdMap(capacity=16), IdMap(capacity=16)
    keys = np.arange(40) % 30  # 30 new keys: past max_load of 16 slots
    found = fused.find_or_insert_batch(keys)
    plain.find_or_insert(keys[found.positions])
    assert fused.capacity == plain.capacity == 64 and len(fused) == 30
    np.testing.assert_array_equal(fused.find(np.arange(30)), np.arange(30))
    limited = IdMap(capacity=16, max_size=8)
    limited.find_or_insert(np.arange(6))
    assert limited.find_or_insert_batch(np.array([1, 2, 3])) is None  # 6 + 3 > 8 might pass
    assert len(limited) == 6
    assert limited.find_or_insert_batch(np.array([4, 4])).rows.tolist() == [4]


def _tables(**kwargs):
    make = lambda: EmbeddingTable(  # noqa: E731
        "t", dim=3, initializer=UniformInitializer(-1, 1), children=["a", "b"], **kwargs
    )
    return make(), make()


@pytest.mark.parametrize("tiered", [False, True], ids=["ram", "tiers"])
def test_table_batch_lookup_equals_dedupe_then_lookup(tiered, tmp_path):
    storage = StorageTiers(ram_bytes=256, directory=tmp_path) if tiered else None
    fused, plain = _tables(storage=storage)
    rng = np.random.default_rng(1)
    for _ in range(4):
        ids = rng.integers(0, 50, 200)
        tags = rng.integers(0, 2, ids.size)
        found = fused.lookup_batch(ids, tags)
        first, inverse = first_occurrences(ids, tags)
        counts = np.bincount(inverse, minlength=first.size)
        expected = plain.lookup(ids[first], tags[first], counts)
        np.testing.assert_array_equal(found.positions, first)
        np.testing.assert_array_equal(found.index, inverse)
        np.testing.assert_array_equal(found.counts, counts)
        np.testing.assert_array_equal(found.rows, expected.rows)
        np.testing.assert_array_equal(found.values, expected.values)  # initial values by id
        assert found.stats == expected.stats == fused.last_stats
    assert fused.stats_total == plain.stats_total
    if tiered:  # rows of the lookups were brought into RAM alike
        assert fused.stats()["tiers"] == plain.stats()["tiers"]
        assert fused.stats()["tiers"]["promotions"] > 0


@pytest.mark.parametrize(
    "policies",
    [{"admission": FrequencyAdmission(2)}, {"eviction": CapacityEviction(10)}],
    ids=["admission", "eviction"],
)
def test_table_batch_lookup_leaves_policies_to_the_general_path(policies):
    table = EmbeddingTable("t", dim=2, **policies)
    assert table.lookup_batch(np.array([1, 1, 2])) is None
    assert len(table) == 0
    assert isinstance(EmbeddingTable("u", dim=2).admission, AdmitAll)

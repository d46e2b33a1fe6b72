"""The CUDA id map against its CPU twin: kernel by kernel, then ``IdMap(device="cuda")`` against
``IdMap()`` on the same call sequences. Integer results must be bitwise equal; only which slot of
a probe chain a key takes may differ, so tables are compared as dicts."""

from __future__ import annotations

import numpy as np
import pytest

from recis.core.cuda import id_map as gpu_kernels
from recis.core.cuda.host_mirror import raise_deferred_errors
from recis.core.cuda.streams import on_stream
from recis.core.errors import TableFullError
from recis.core.id_map import IdMap
from recis.core.kernels import id_map as kernels

pytestmark = pytest.mark.gpu

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
EXTREME_KEYS = [INT64_MIN, INT64_MIN + 1, -1, 0, 1, INT64_MAX - 1, INT64_MAX]


def _distinct_pairs(rng, count, tag_count=4):
    """``count`` distinct (key, tag) pairs in random order: extremes, small keys shared by several
    tags, and random keys."""
    keys = rng.integers(INT64_MIN, INT64_MAX, 2 * count + 20, dtype=np.int64, endpoint=True)
    keys[:14] = EXTREME_KEYS * 2
    keys[14 : count // 4] %= 50
    tags = rng.integers(0, tag_count, keys.size)
    _, first = np.unique(np.stack([keys, tags], 1), axis=0, return_index=True)
    first = rng.permutation(first)[:count]
    return keys[first], tags[first]


def _as_dict(cp, slots) -> dict:
    return kernels._as_dict_reference(cp.asnumpy(slots))


def _check_same(cp, gpu_values, cpu_values):
    np.testing.assert_array_equal(cp.asnumpy(gpu_values), cpu_values)


def test_home_slots_are_the_cpu_hash(cp):
    rng = np.random.default_rng(0)
    keys = np.concatenate([EXTREME_KEYS, rng.integers(INT64_MIN, INT64_MAX, 5000, np.int64)])
    tags = rng.integers(0, kernels.MAX_TAG + 1, keys.size)
    for shift in (1, 40, 60):
        got = gpu_kernels.home_slot(cp.asarray(keys), cp.asarray(tags), 1, shift)
        _check_same(cp, got, kernels.home_slot_reference(keys, tags, shift))
    one_tag = gpu_kernels.home_slot(cp.asarray(keys), cp.asarray([7]), 0, 44)
    _check_same(cp, one_tag, kernels.home_slot_reference(keys, np.full(keys.size, 7), 44))


@pytest.mark.parametrize("load", [0.3, 0.9])
def test_insert_new_find_and_rehash_match_cpu(cp, load):
    capacity, shift = 1 << 12, 52
    rng = np.random.default_rng(1)
    keys, tags = _distinct_pairs(rng, int(capacity * load))
    rows = rng.permutation(keys.size)
    cpu_slots = np.zeros((capacity, 2), np.int64)
    kernels.insert_new(cpu_slots, shift, keys, tags, 1, rows, 1)
    slots = cp.zeros((capacity, 2), np.int64)
    gpu_kernels.insert_new(slots, shift, cp.asarray(keys), cp.asarray(tags), 1, cp.asarray(rows), 1)
    assert _as_dict(cp, slots) == _as_dict(cp, cpu_slots)

    probe_keys = np.concatenate([keys, keys[:300], [12345]])
    probe_tags = np.concatenate([tags, (tags[:300] + 1) % 5, [9]])
    expected = np.empty(probe_keys.size, np.int64)
    kernels.find(cpu_slots, shift, probe_keys, probe_tags, 1, expected)
    found = cp.empty(probe_keys.size, np.int64)
    gpu_kernels.find(slots, shift, cp.asarray(probe_keys), cp.asarray(probe_tags), 1, found)
    _check_same(cp, found, expected)

    bigger = cp.zeros((capacity * 2, 2), np.int64)
    gpu_kernels.rehash(slots, bigger, shift - 1, 1)
    assert _as_dict(cp, bigger) == _as_dict(cp, cpu_slots)
    gpu_kernels.find(bigger, shift - 1, cp.asarray(probe_keys), cp.asarray(probe_tags), 1, found)
    _check_same(cp, found, expected)


@pytest.mark.parametrize("load", [0.2, 0.45, 0.9])
def test_erase_matches_cpu_and_keeps_probe_chains(cp, load):
    capacity, shift = 1 << 11, 53
    rng = np.random.default_rng(int(load * 100))
    keys, tags = _distinct_pairs(rng, int(capacity * load))
    cpu_slots = np.zeros((capacity, 2), np.int64)
    kernels.insert_new(cpu_slots, shift, keys, tags, 1, np.arange(keys.size), 1)
    slots = cp.asarray(cpu_slots)  # the same layout to start from
    victims = rng.permutation(keys.size)[: keys.size // 2]
    victim_keys = np.concatenate([keys[victims], [424242]])
    victim_tags = np.concatenate([tags[victims], [3]])
    expected = np.empty(victim_keys.size, np.int64)
    kernels.erase(cpu_slots, shift, victim_keys, victim_tags, 1, expected)
    erased = cp.empty(victim_keys.size, np.int64)
    gpu_kernels.erase(slots, shift, cp.asarray(victim_keys), cp.asarray(victim_tags), 1, erased)
    _check_same(cp, erased, expected)
    assert expected[-1] == -1 and _as_dict(cp, slots) == _as_dict(cp, cpu_slots)
    left = np.empty(keys.size, np.int64)
    kernels.find_reference(cpu_slots, shift, keys, tags, 1, left)
    found = cp.empty(keys.size, np.int64)
    gpu_kernels.find(slots, shift, cp.asarray(keys), cp.asarray(tags), 1, found)
    _check_same(cp, found, left)


def test_erasing_a_key_twice_in_one_call_erases_it_once(cp):
    capacity, shift = 1 << 6, 58
    slots = cp.zeros((capacity, 2), np.int64)
    keys = cp.asarray([5, 6, 7])
    gpu_kernels.insert_new(slots, shift, keys, cp.zeros(1, np.int64), 0, cp.asarray([0, 1, 2]), 1)
    erased = cp.empty(3, np.int64)
    gpu_kernels.erase(slots, shift, cp.asarray([6, 6, 6]), cp.zeros(1, np.int64), 0, erased)
    assert sorted(cp.asnumpy(erased).tolist()) == [-1, -1, 1]
    assert _as_dict(cp, slots) == {(5, 0): 0, (7, 0): 2}


def test_find_or_place_rank_and_settle_match_cpu(cp):
    capacity, shift = 1 << 14, 50
    rng = np.random.default_rng(5)
    present, present_tags = _distinct_pairs(rng, 2000)
    fresh = rng.integers(-300, 300, 4000)
    batch = np.concatenate([present[:700], fresh, present[:100], fresh[::-1], EXTREME_KEYS])
    batch_tags = rng.integers(0, 4, batch.size)
    batch_tags[:700] = present_tags[:700]
    cpu_slots = np.zeros((capacity, 2), np.int64)
    kernels.insert_new(cpu_slots, shift, present, present_tags, 1, np.arange(present.size), 1)
    slots = cp.asarray(cpu_slots)

    rows, first, slot_of = (np.empty(batch.size, np.int64) for _ in range(3))
    kernels.find_or_place(cpu_slots, shift, batch, batch_tags, 1, 1, rows, first, slot_of)
    gpu_batch, gpu_tags = cp.asarray(batch), cp.asarray(batch_tags)
    gpu_rows, gpu_first, gpu_slot_of = (cp.empty(batch.size, np.int64) for _ in range(3))
    gpu_kernels.find_or_place(
        slots, shift, gpu_batch, gpu_tags, 1, 1, gpu_rows, gpu_first, gpu_slot_of
    )
    _check_same(cp, gpu_rows, rows)
    _check_same(cp, gpu_first, first)

    positions, gpu_positions = np.empty(batch.size, np.int64), cp.empty(batch.size, np.int64)
    count = kernels.rank_first_occurrences(first, positions)
    assert gpu_kernels.rank_first_occurrences(gpu_first, gpu_positions) == count > 0
    _check_same(cp, gpu_first, first)
    _check_same(cp, gpu_positions[:count], positions[:count])

    new_rows = np.arange(5000, 5000 + count)[::-1].copy()
    kernels.settle(cpu_slots, batch_tags, 1, first, positions[:count], slot_of, new_rows, rows)
    gpu_kernels.settle(
        slots, gpu_tags, 1, gpu_first, gpu_positions[:count], gpu_slot_of, cp.asarray(new_rows),
        gpu_rows,
    )  # fmt: skip
    _check_same(cp, gpu_rows, rows)
    assert _as_dict(cp, slots) == _as_dict(cp, cpu_slots)


def _twins(cp, **options):
    return IdMap("twin", **options), IdMap("twin", device="cuda", **options)


def _check_inserted(cp, gpu_result, cpu_result):
    """The same rows and new keys; the GPU's new positions and rows may be padded (when it did
    not wait for the number of new keys), with position 0 and row -1."""
    count = int(gpu_result.count)
    assert count == cpu_result.count
    _check_same(cp, gpu_result.rows, cpu_result.rows)
    _check_same(cp, gpu_result.is_new, cpu_result.is_new)
    positions, new_rows = (cp.asnumpy(a) for a in gpu_result[2:4])
    np.testing.assert_array_equal(positions[:count], cpu_result.new_positions)
    np.testing.assert_array_equal(new_rows[:count], cpu_result.new_rows)
    assert positions.size == new_rows.size in (count, gpu_result.rows.size)
    assert (positions[count:] == 0).all() and (new_rows[count:] == -1).all()


def _check_same_contents(cp, gpu_map, cpu_map):
    assert len(gpu_map) == len(cpu_map)
    triples = [sorted(zip(*(cp.asnumpy(a).tolist() for a in gpu_map.export()), strict=True))]
    triples.append(sorted(zip(*(a.tolist() for a in cpu_map.export()), strict=True)))
    assert triples[0] == triples[1]
    for key in ("rows_high_water", "rows_free", "size"):
        assert gpu_map.stats()[key] == cpu_map.stats()[key]


@pytest.mark.parametrize("capacity", [1 << 22, 1024])  # one probe / growth inside the batches
def test_million_key_batches_full_of_duplicates(cp, capacity):
    rng = np.random.default_rng(7)
    pool = np.concatenate([EXTREME_KEYS, rng.integers(INT64_MIN, INT64_MAX, 300_000, np.int64)])
    cpu_map, gpu_map = _twins(cp, capacity=capacity)
    for step in range(3):
        batch = pool[rng.integers(0, 100_000 * (step + 1), 1 << 20)]
        tags = rng.integers(0, 3, batch.size)
        expected = cpu_map.find_or_insert(batch, tags)
        _check_inserted(cp, gpu_map.find_or_insert(cp.asarray(batch), cp.asarray(tags)), expected)
        assert 0 < expected.new_rows.size < batch.size
    _check_same(cp, gpu_map.find(cp.asarray(pool), 1), cpu_map.find(pool, 1))
    _check_same_contents(cp, gpu_map, cpu_map)


def test_one_hot_new_key_among_a_million(cp):
    rng = np.random.default_rng(12)
    batch = np.full(1 << 20, INT64_MIN + 3)
    batch[rng.integers(0, batch.size, 1000)] = rng.integers(-(2**40), 2**40, 1000)
    cpu_map, gpu_map = _twins(cp, capacity=1 << 22)
    expected = cpu_map.find_or_insert(batch)
    _check_inserted(cp, gpu_map.find_or_insert(cp.asarray(batch)), expected)
    _check_inserted(cp, gpu_map.find_or_insert(cp.asarray(batch)), cpu_map.find_or_insert(batch))


def test_growth_during_batches_with_extreme_keys_and_tags(cp):
    rng = np.random.default_rng(8)
    cpu_map, gpu_map = _twins(cp, capacity=16, max_load=0.75)
    for size in (3, 40, 7, 900, 5000, 20_000):
        batch = rng.integers(INT64_MIN, INT64_MAX, size, np.int64, endpoint=True)
        batch[rng.integers(0, size, min(size, 7))] = EXTREME_KEYS[: min(size, 7)]
        tags = rng.integers(0, kernels.MAX_TAG + 1, size) % 5 * 8191
        expected = cpu_map.find_or_insert(batch, tags)
        _check_inserted(cp, gpu_map.find_or_insert(cp.asarray(batch), cp.asarray(tags)), expected)
        scalar = cpu_map.find_or_insert(batch[::2], tags=kernels.MAX_TAG)
        _check_inserted(
            cp, gpu_map.find_or_insert(cp.asarray(batch[::2]), tags=kernels.MAX_TAG), scalar
        )
    assert gpu_map.capacity == cpu_map.capacity > 16
    _check_same_contents(cp, gpu_map, cpu_map)


def test_random_operation_sequences_match_cpu(cp):
    rng = np.random.default_rng(9)
    cpu_map, gpu_map = _twins(cp, capacity=64)
    for _ in range(150):
        size = int(rng.integers(0, 400))
        keys = rng.integers(-200, 200, size)
        keys[: size // 10] = rng.choice(EXTREME_KEYS, size // 10)
        tags = rng.integers(0, 3, size) if rng.random() < 0.5 else None
        gpu_keys = cp.asarray(keys)
        gpu_tags = None if tags is None else cp.asarray(tags)
        operation = rng.choice(["find_or_insert", "find", "erase"], p=[0.45, 0.2, 0.35])
        expected = getattr(cpu_map, operation)(keys, tags)
        got = getattr(gpu_map, operation)(gpu_keys, gpu_tags)
        if operation == "find_or_insert":
            _check_inserted(cp, got, expected)
        else:
            _check_same(cp, got, expected)
        _check_same_contents(cp, gpu_map, cpu_map)


def test_erased_rows_are_reused_like_on_cpu(cp):
    cpu_map, gpu_map = _twins(cp)
    for table, xp in ((cpu_map, np), (gpu_map, cp)):
        table.find_or_insert(xp.asarray(np.arange(1, 6)))
        assert cp.asnumpy(table.erase(xp.asarray([2, 4, 99]))).tolist() == [1, 3, -1]
        reinserted = table.find_or_insert(xp.asarray([7, 8, 4, 9, 2]))
        assert cp.asnumpy(reinserted.rows).tolist() == [3, 1, 5, 6, 7]


def test_insert_new_export_load_and_clear(cp):
    rng = np.random.default_rng(10)
    keys, tags = _distinct_pairs(rng, 3000)
    cpu_map, gpu_map = _twins(cp, capacity=16)
    _check_same(
        cp, gpu_map.insert_new(cp.asarray(keys), cp.asarray(tags)), cpu_map.insert_new(keys, tags)
    )
    cpu_map.erase(keys[::3], tags[::3])
    loaded = IdMap("loaded", device="cuda")
    loaded.load(cpu_map.export(), cpu_map.rows.state())
    _check_same_contents(cp, loaded, cpu_map)
    _check_same(cp, loaded.find(cp.asarray(keys), cp.asarray(tags)), cpu_map.find(keys, tags))
    fresh = rng.integers(INT64_MIN, INT64_MAX, 500, np.int64)
    _check_inserted(cp, loaded.find_or_insert(cp.asarray(fresh)), cpu_map.find_or_insert(fresh))
    loaded.clear()
    assert len(loaded) == 0 and loaded.capacity == 1024
    assert int(loaded.find(cp.asarray(keys), cp.asarray(tags)).max()) == -1


def test_max_size_is_a_clear_error_and_inserts_nothing(cp):
    table = IdMap("user_emb", max_size=3, device="cuda")
    table.find_or_insert(cp.asarray([1, 2]))
    with pytest.raises(TableFullError, match="'user_emb' is full"):
        table.find_or_insert(cp.asarray([3, 4, 1]))
    assert len(table) == 2 and cp.asnumpy(table.find(cp.asarray([3, 4]))).tolist() == [-1, -1]
    assert cp.asnumpy(table.find_or_insert(cp.asarray([3, 3, 2])).rows).tolist() == [2, 2, 1]
    with pytest.raises(TableFullError, match="'user_emb' is full"):
        table.insert_new(cp.asarray([10]))


def test_runs_on_the_callers_stream(cp):
    rng = np.random.default_rng(11)
    batch = rng.integers(-5000, 5000, 50_000)
    cpu_map = IdMap("twin", capacity=16)
    expected = [cpu_map.find_or_insert(batch), cpu_map.erase(batch[::7]), cpu_map.find(batch)]
    stream = cp.cuda.Stream(non_blocking=True)
    with on_stream(stream.ptr):
        assert cp.cuda.get_current_stream().ptr == stream.ptr
        gpu_map = IdMap("twin", capacity=16, device="cuda")
        gpu_batch = cp.asarray(batch)
        got = [gpu_map.find_or_insert(gpu_batch), gpu_map.erase(gpu_batch[::7])]
        got.append(gpu_map.find(gpu_batch))
        stream.synchronize()
    _check_inserted(cp, got[0], expected[0])
    _check_same(cp, got[1], expected[1])
    _check_same(cp, got[2], expected[2])


def test_keys_on_another_device_are_rejected(cp):
    with pytest.raises(TypeError, match="'gpu' is on cuda: keys must be a cupy array"):
        IdMap("gpu", device="cuda").find(np.arange(3))
    with pytest.raises(TypeError, match="'host' is on cpu: keys must be a numpy array"):
        IdMap("host").find(cp.arange(3))
    with pytest.raises(TypeError, match="tags must be a cupy array"):
        IdMap("gpu", device="cuda").find(cp.arange(3), np.zeros(3, np.int64))
    IdMap("gpu", device="cuda").find(cp.arange(3), cp.asarray([0, 1, 1 << 15]))
    with pytest.raises(ValueError, match="tags must lie in"):  # found on the device, raised later
        raise_deferred_errors(wait=True)
    raise_deferred_errors(wait=True)  # reported once: nothing is left for later tests

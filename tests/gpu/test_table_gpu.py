"""``EmbeddingTable(device="cuda")`` against the CPU table on the same random call sequences:
rows and integer results bitwise equal, float values within 1e-6, the same lookup stats, and
state dicts (NumPy arrays) that round-trip on either device."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from recis.core.errors import TableFullError
from recis.core.initializers import NormalInitializer
from recis.core.optim import SGD, Adagrad, Adam, AdamW, AdamWTF, Ftrl, RowWiseAdagrad
from recis.core.optim.updater import SparseUpdater
from recis.core.policies import (
    AdmitAll,
    CapacityEviction,
    FrequencyAdmission,
    GlobalStepEviction,
    ReadOnly,
)
from recis.core.table import EmbeddingTable

pytestmark = pytest.mark.gpu

CLOSE = {"rtol": 1e-6, "atol": 1e-6}
CHILDREN = ["user", "item", "query"]
POLICIES = {
    "admit all": dict,
    "frequency admission": lambda: {"admission": FrequencyAdmission(threshold=3)},
    "read only": lambda: {"admission": ReadOnly()},
    "lru": lambda: {"eviction": CapacityEviction(max_size=60, policy="lru")},
    "lfu": lambda: {"eviction": CapacityEviction(max_size=60, policy="lfu")},
    "global step": lambda: {"eviction": GlobalStepEviction(filter_step=2)},
}


def twin_tables(**kwargs) -> list[EmbeddingTable]:
    """A CPU and a GPU table with the same options (policies made once per table by
    ``kwargs["policies"]``); small blocks and id maps, so that both grow."""
    make_policies = kwargs.pop("policies", dict)
    options = {"initializer": NormalInitializer(std=0.1), "seed": 5, "block_rows": 16}
    options |= {"capacity": 16, "children": CHILDREN} | kwargs
    return [EmbeddingTable("t", 4, device=d, **options, **make_policies()) for d in ("cpu", "cuda")]


def to_host(cp, value):
    return cp.asnumpy(value) if isinstance(value, cp.ndarray) else np.asarray(value)


def assert_equal(cp, gpu, cpu, **close):
    """``gpu`` is a CuPy array equal to ``cpu`` (bitwise, or within ``close``)."""
    assert isinstance(gpu, cp.ndarray), type(gpu)
    if close:
        np.testing.assert_allclose(cp.asnumpy(gpu), cpu, **close)
    else:
        np.testing.assert_array_equal(cp.asnumpy(gpu), cpu)


def assert_same_inserted(cp, got, want) -> None:
    """A GPU ``Inserted`` (new positions and rows padded past the count) equals the CPU's."""
    count = int(got.count)
    assert count == want.count
    assert_equal(cp, got.rows, want.rows)
    assert_equal(cp, got.is_new, want.is_new)
    assert_equal(cp, got.new_positions[:count], want.new_positions)
    assert_equal(cp, got.new_rows[:count], want.new_rows)
    assert (cp.asnumpy(got.new_rows[count:]) == -1).all()
    assert (cp.asnumpy(got.new_positions[count:]) == 0).all()


def random_batch(rng, size: int = 40, id_range: int = 120):
    """Distinct (id, tag) keys, with extreme ids, their tags and occurrence counts."""
    ids = rng.integers(-id_range // 2, id_range // 2, size)
    ids[:2] = [np.iinfo(np.int64).min, np.iinfo(np.int64).max]
    tags = rng.integers(0, len(CHILDREN), size)
    keys = np.unique(np.stack([ids, tags], 1), axis=0)
    keys = keys[rng.permutation(len(keys))]
    return keys[:, 0].copy(), keys[:, 1].copy(), rng.integers(1, 4, len(keys))


def lookup_both(cp, tables, ids, tags, counts, train=True, close=CLOSE):
    cpu, gpu = tables
    want = cpu.lookup(ids, tags, counts, train)
    got = gpu.lookup(cp.asarray(ids), cp.asarray(tags), cp.asarray(counts), train)
    assert_equal(cp, got.rows, want.rows)
    assert_equal(cp, got.values, want.values, **close)
    assert got.stats.as_dict() == want.stats.as_dict()
    return want


def assert_same_state(cp, tables, close=CLOSE):
    """The GPU table's state dict (all NumPy) equals the CPU table's."""
    assert_states_equal(tables[1].state_dict(), tables[0].state_dict(), **close)


def assert_states_equal(got: dict, want: dict, **close):
    """Equal state dicts (floats within ``close``); the admission's side map, whose order is
    its slot order, is compared as a mapping."""
    assert sorted(got) == sorted(want)
    for name, expected in want.items():
        assert isinstance(got[name], np.ndarray), name
        if name.startswith("admission."):
            continue
        if close and expected.dtype.kind == "f":
            np.testing.assert_allclose(got[name], expected, err_msg=name, **close)
        else:
            np.testing.assert_array_equal(got[name], expected, err_msg=name)
    assert _admission_entries(got) == _admission_entries(want)


def _admission_entries(state) -> dict:
    keys = state.get("admission.keys", np.empty(0, np.int64))
    if not keys.size:
        return {}
    triples = zip(keys, state["admission.tags"], state["admission.counts"], strict=True)
    return {(int(k), int(t)): int(c) for k, t, c in triples}


@pytest.mark.parametrize("policy", list(POLICIES))
def test_lookups_erases_and_state_equal_the_cpu_table(cp, policy):
    tables = twin_tables(policies=POLICIES[policy])
    rng = np.random.default_rng(sorted(POLICIES).index(policy))
    for step in range(12):
        ids, tags, counts = random_batch(rng)
        lookup_both(cp, tables, ids, tags, counts, train=step % 4 != 3)
        if step % 3 == 2:
            erased = np.concatenate([ids[:5], [10**12]])
            got = tables[1].erase(cp.asarray(erased), cp.asarray(tags[:6]))
            assert_equal(cp, got, tables[0].erase(erased, tags[:6]))
        if policy == "global step":
            for table in tables:
                table.eviction.advance()
            assert tables[1].evict_stale() == tables[0].evict_stale()
        found = tables[1].find(cp.asarray(ids), cp.asarray(tags))
        assert_equal(cp, found, tables[0].find(ids, tags))
        assert len(tables[1]) == len(tables[0])
    assert tables[1].stats_total == tables[0].stats_total
    assert_same_state(cp, tables)


def test_find_or_insert_grows_both_maps_and_stores_alike(cp):
    tables = twin_tables()
    rng = np.random.default_rng(7)
    for size in (10, 100, 1000, 3000):
        ids = rng.integers(-(2**62), 2**62, size)
        ids[::3] = ids[0]  # repeats, inserted once
        want = tables[0].find_or_insert(ids, 1)
        got = tables[1].find_or_insert(cp.asarray(ids), 1)
        assert_same_inserted(cp, got, want)
        assert_equal(cp, tables[1].gather(got.rows), tables[0].gather(want.rows), **CLOSE)
    assert len(tables[1]) == len(tables[0])
    # the GPU grows for the host's upper bound of its size, which may lag the device: never less
    assert tables[1].ids.capacity >= tables[0].ids.capacity > 16
    assert tables[1].store.num_blocks >= tables[0].store.num_blocks > 1
    np.testing.assert_allclose(
        cp.asnumpy(tables[1].initial_values(cp.asarray(ids), cp.full(ids.size, 2))),
        tables[0].initial_values(ids, np.full(ids.size, 2)),
        **CLOSE,
    )


def test_missing_ids_read_zeros_on_the_gpu_without_inserting(cp):
    _, table = twin_tables()
    rows = table.find_or_insert(cp.asarray([1, 2])).rows
    values = table.gather(table.find(cp.asarray([2, 99, 1])))
    assert isinstance(values, cp.ndarray) and values.dtype == np.float32
    assert cp.asnumpy(values[1]).tolist() == [0.0] * 4
    np.testing.assert_array_equal(cp.asnumpy(values[[2, 0]]), cp.asnumpy(table.gather(rows)))
    assert len(table) == 2


@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16])
def test_state_dict_round_trips_between_devices(cp, dtype):
    # an initial value one float32 ulp away may round to the neighbouring storage value
    close = {"rtol": float(ml_dtypes.finfo(dtype).eps), "atol": 1e-6}
    tables = twin_tables(dtype=dtype, policies=POLICIES["frequency admission"])
    SparseUpdater(Adam(), [tables[1]])  # optimizer slots too
    SparseUpdater(Adam(), [tables[0]])
    rng = np.random.default_rng(3)
    for _ in range(4):
        lookup_both(cp, tables, *random_batch(rng), close=close)
    tables[0].erase(np.array([0, 1, 2]), np.array([0, 1, 2]))
    tables[1].erase(cp.asarray([0, 1, 2]), cp.asarray([0, 1, 2]))
    assert_same_state(cp, tables, close)
    state = tables[1].state_dict()
    assert state["embedding"].dtype == np.dtype(dtype)
    restored = twin_tables(dtype=dtype, policies=POLICIES["frequency admission"])
    for table in restored:
        SparseUpdater(Adam(), [table])
    restored[0].load_state_dict(tables[0].state_dict())
    restored[1].load_state_dict(state)  # the GPU table's state, loaded on the GPU
    assert_same_state(cp, restored, close)
    for state_of in (tables[0].state_dict(), restored[1].state_dict()):  # and back to the CPU
        fresh = twin_tables(dtype=dtype, policies=POLICIES["frequency admission"])[0]
        SparseUpdater(Adam(), [fresh])
        fresh.load_state_dict(state_of)
        assert_states_equal(fresh.state_dict(), state_of)
    for _ in range(3):  # the restored tables go on like the originals
        batch = random_batch(rng)
        want = lookup_both(cp, restored, *batch, close=close)
        np.testing.assert_array_equal(tables[0].lookup(*batch).rows, want.rows)


ROUND_TRIP_RULES = [
    SGD(),
    Adagrad(),
    RowWiseAdagrad(),
    Adam(amsgrad=True),
    AdamW(weight_decay=0.1),
    AdamWTF(),
    Ftrl(l1=0.01),
]


@pytest.mark.parametrize("dtype", [np.float32, ml_dtypes.bfloat16, np.float16])
@pytest.mark.parametrize("rule", ROUND_TRIP_RULES, ids=repr)
def test_trained_rows_and_slots_round_trip_through_a_gpu_table_bit_for_bit(cp, rule, dtype):
    cpu = twin_tables(dtype=dtype)[0]
    updater = SparseUpdater(rule, [cpu])
    rng = np.random.default_rng(5)
    for _ in range(3):
        rows = cpu.lookup(*random_batch(rng)).rows
        updater.accumulate(cpu, rows, rng.standard_normal((rows.size, 4)).astype(np.float32))
        updater.step(lr=0.1)
    state = cpu.state_dict()
    slots = [name for name in state if name not in ("id", "tag", "row") and "." not in name]
    assert len(slots) == 1 + len(rule.slots(4)) and state["embedding"].dtype == dtype
    for name in slots:  # every field holds trained values: most are not zero
        assert (state[name] != 0).mean() > 0.5, name
    assert (state["embedding"] < 0).any()  # negative values, which casting words would lose
    gpu = twin_tables(dtype=dtype)[1]
    SparseUpdater(rule, [gpu])
    gpu.load_state_dict(state)
    assert_states_equal(gpu.state_dict(), state)  # bit for bit, raw words included
    for name in slots:
        got = gpu.store.gather(cp.asarray(state["row"]), name, dtype=np.float32)
        want = cpu.store.gather(state["row"], name, dtype=np.float32)
        np.testing.assert_array_equal(cp.asnumpy(got), want, err_msg=name)


def test_sparse_updates_of_a_gpu_table_equal_the_cpu(cp):
    tables = twin_tables()
    updaters = [SparseUpdater(Adam(weight_decay=0.01), [table]) for table in tables]
    rng = np.random.default_rng(11)
    for _ in range(4):
        ids, tags, counts = random_batch(rng)
        rows = lookup_both(cp, tables, ids, tags, counts).rows
        grads = rng.standard_normal((2 * rows.size, 4)).astype(np.float32)
        both_rows = np.concatenate([rows, rows])  # repeats are summed
        updaters[0].accumulate(tables[0], both_rows, grads)
        updaters[1].accumulate(tables[1], cp.asarray(both_rows), cp.asarray(grads))
        for updater in updaters:
            updater.step(lr=0.05)
    assert_same_state(cp, tables)


def test_gpu_tables_refuse_what_they_cannot_do_by_name(cp):
    class CustomAdmission(AdmitAll):
        runs_on_gpu = False

    with pytest.raises(NotImplementedError, match=r"table 'gpu'.*CustomAdmission"):
        EmbeddingTable("gpu", 4, device="cuda", admission=CustomAdmission())
    with pytest.raises(ValueError, match=r"table 'gpu'.*'cpu' or 'cuda'"):
        EmbeddingTable("gpu", 4, device="tpu")
    cpu = EmbeddingTable("cpu", 4)
    with pytest.raises(TypeError, match="table 'cpu' is on cpu: ids must be a NumPy array"):
        cpu.find(cp.asarray([1]))

    full = EmbeddingTable("full", 4, device="cuda", max_size=2)
    with pytest.raises(TableFullError, match="'full'"):
        full.find_or_insert(cp.asarray([1, 2, 3]))
    assert len(full) == 0

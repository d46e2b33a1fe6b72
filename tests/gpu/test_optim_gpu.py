"""Sparse optimizers on the GPU: fused CUDA rules, gradient sums and the updater vs the CPU."""

from __future__ import annotations

from types import SimpleNamespace

import ml_dtypes
import numpy as np
import pytest

from recis.core.gradients import GradientBuffer
from recis.core.optim import SGD, Adagrad, Adam, AdamW, AdamWTF, Ftrl, RowWiseAdagrad, Rule
from recis.core.optim.updater import SparseUpdater
from recis.core.row_store import RowStore

CLOSE = {"rtol": 1e-6, "atol": 1e-7}
RULES = [
    SGD(),
    SGD(weight_decay=0.1),
    Adagrad(),
    Adagrad(initial_accumulator_value=0.1, weight_decay=0.01, lr_decay=0.05, eps=1e-6),
    RowWiseAdagrad(),
    RowWiseAdagrad(initial_accumulator_value=0.5, weight_decay=0.02, eps=1e-3),
    RowWiseAdagrad(lr_decay=0.1),
    Adam(),
    Adam(weight_decay=0.05, amsgrad=True, beta1=0.8, beta2=0.99, eps=1e-6),
    AdamW(),
    AdamW(weight_decay=0.3, amsgrad=True),
    AdamWTF(),
    AdamWTF(weight_decay=0.1, beta1=0.5, eps=1e-4),
    Ftrl(),
    Ftrl(initial_accumulator_value=0.0, l1=0.05, l2=0.1, beta=0.5),
    Ftrl(learning_rate_power=0.0, l1=0.01),
]
STEPS = 6


def gradient_steps(rows: int, dim: int, seed: int):
    """Per step: the rows touched (repeats summed first, as the updater does) and gradients."""
    rng = np.random.default_rng(seed)
    for _ in range(STEPS):
        ids = rng.integers(0, rows, 2 * rows)
        grads = rng.normal(0, 0.5, (ids.size, dim)).astype(np.float32)
        buffer = GradientBuffer(dim)
        buffer.add(ids, grads)
        yield buffer.summed(divisor=1)


@pytest.mark.gpu
@pytest.mark.parametrize("rule", RULES, ids=repr)
@pytest.mark.parametrize("dim", [1, 8, 33])
def test_every_rule_equals_the_cpu_over_steps_with_repeated_rows(cp, rule, dim):
    rows = 50
    params = np.random.default_rng(dim).uniform(-1, 1, (rows, dim)).astype(np.float32)
    slots = rule.init(rows, dim)
    gpu_params, gpu_slots = cp.asarray(params), {k: cp.asarray(v) for k, v in slots.items()}
    for step, (touched, grads) in enumerate(gradient_steps(rows, dim, dim), start=1):
        lr = 0.05 * step
        new, new_slots = rule.update(params[touched], grads, pick(slots, touched), step, lr)
        params[touched] = new
        for name, value in new_slots.items():
            slots[name][touched] = value
        g_rows = cp.asarray(touched)
        g_slots = {k: v[g_rows] for k, v in gpu_slots.items()}
        new, new_slots = rule.update(gpu_params[g_rows], cp.asarray(grads), g_slots, step, lr)
        assert isinstance(new, cp.ndarray) and set(new_slots) == set(slots)
        gpu_params[g_rows] = new
        for name, value in new_slots.items():
            gpu_slots[name][g_rows] = value
        np.testing.assert_allclose(cp.asnumpy(gpu_params), params, **CLOSE)
        for name in slots:
            np.testing.assert_allclose(cp.asnumpy(gpu_slots[name]), slots[name], **CLOSE)


def pick(slots: dict, rows) -> dict:
    return {name: value[rows] for name, value in slots.items()}


@pytest.mark.gpu
@pytest.mark.parametrize("dim", [1, 7, 8, 9, 127, 128, 129, 300, 1000])
def test_row_wise_adagrad_means_rows_as_numpy_does(cp, dim):
    rule = RowWiseAdagrad(weight_decay=0.1)
    rng = np.random.default_rng(dim)
    params = rng.standard_normal((40, dim)).astype(np.float32)
    grads = (rng.standard_normal((40, dim)) * rng.uniform(0.01, 100, (40, 1))).astype(np.float32)
    slots = rule.init(40, dim)
    expected, expected_slots = rule.update(params, grads, slots, 1, 0.3)
    got, got_slots = rule.update(*map(cp.asarray, (params, grads)), on(cp, slots), 1, 0.3)
    np.testing.assert_array_equal(cp.asnumpy(got_slots["sum"]), expected_slots["sum"])
    np.testing.assert_allclose(cp.asnumpy(got), expected, **CLOSE)


def on(cp, slots: dict) -> dict:
    return {name: cp.asarray(value) for name, value in slots.items()}


@pytest.mark.gpu
def test_ftrl_with_another_power_stays_within_an_ulp_of_each_power(cp):
    rule = Ftrl(learning_rate_power=-0.3, l1=0.01, initial_accumulator_value=0.5)
    rng = np.random.default_rng(0)
    params, grads = (rng.standard_normal((100, 16)).astype(np.float32) for _ in range(2))
    expected, expected_slots = rule.update(params, grads, rule.init(100, 16), 1, 0.1)
    got, got_slots = rule.update(
        *map(cp.asarray, (params, grads)), on(cp, rule.init(100, 16)), 1, 0.1
    )
    # each power may differ by an ulp (1e-7 of a root near 1); the update divides the difference
    # of two roots by lr and scales it by the row, so rows and linear terms get ~1e-5 absolute
    near = {"rtol": 1e-4, "atol": 1e-5}
    np.testing.assert_allclose(cp.asnumpy(got), expected, **near)
    np.testing.assert_allclose(cp.asnumpy(got_slots["linear"]), expected_slots["linear"], **near)
    np.testing.assert_array_equal(
        cp.asnumpy(got_slots["accumulator"]), expected_slots["accumulator"]
    )


@pytest.mark.gpu
def test_fused_update_checks_devices_and_ftrl_lr(cp):
    params = cp.zeros((2, 3), np.float32)
    with pytest.raises(TypeError, match="grads: expected a CuPy array"):
        SGD().update(params, np.zeros((2, 3), np.float32), {}, 1, 0.1)
    with pytest.raises(ValueError, match="lr: Ftrl needs lr > 0"):
        Ftrl().update(params, params, on(cp, Ftrl().init(2, 3)), 1, 0.0)


class Momentumless(SGD):
    """A user subclass: no fused kernel, so the rule's array code runs on CuPy arrays."""

    def _update(self, xp, params, grads, slots, step, lr):
        return params - lr * xp.sign(grads), {}


@pytest.mark.gpu
def test_rules_without_a_fused_kernel_run_their_array_code(cp):
    params = cp.ones((1, 2), np.float32)
    new, _ = Momentumless().update(params, cp.asarray([[3.0, -2.0]], np.float32), {}, 1, 0.5)
    assert cp.asnumpy(new).tolist() == [[0.5, 1.5]]


@pytest.mark.gpu
@pytest.mark.parametrize("distinct", [False, True])
def test_gradient_buffer_sums_like_the_cpu(cp, distinct):
    rng = np.random.default_rng(int(distinct))
    cpu, gpu = GradientBuffer(4), GradientBuffer(4)
    for _ in range(1 if distinct else 3):
        rows = rng.permutation(300)[:100] if distinct else rng.integers(-1, 200, 100_000)
        grads = rng.standard_normal((rows.size, 4)).astype(np.float32)
        grads[rows == -1] = np.inf  # dropped rows are not checked either
        cpu.add(rows, grads, distinct=distinct)
        gpu.add(cp.asarray(rows), cp.asarray(grads), distinct=distinct)
        assert gpu.all_finite() == cpu.all_finite()
    for divisor in (1, 3):
        expected_rows, expected = cpu.summed(divisor)
        got_rows, got = (cp.asnumpy(a) for a in gpu.summed(divisor))
        assert got_rows.size == sum(piece.size for piece in gpu._rows)  # no size read back
        kept = got_rows >= 0  # -1: padding or dropped
        np.testing.assert_array_equal(got_rows[kept], expected_rows)
        np.testing.assert_allclose(got[kept], expected, **CLOSE)
        if not distinct:
            assert (got[~kept] == 0).all()


def gpu_table(name: str, dim: int, dtype, initial: np.ndarray, cp):
    """What the updater needs of a table whose rows live on the GPU."""
    store = RowStore(dim, dtype, 16, name, "cuda")
    store.ensure_rows(len(initial))
    store.scatter(cp.arange(len(initial)), cp.asarray(initial))
    return _table(name, dim, store)


def _table(name: str, dim: int, store: RowStore) -> SimpleNamespace:
    """A table as the updater sees it; it notes written rows as a table tracking changes does."""
    return SimpleNamespace(
        name=name, dim=dim, store=store, grads=GradientBuffer(dim), written=lambda rows: None
    )


def cpu_table(name: str, dim: int, dtype, initial: np.ndarray):
    store = RowStore(dim, dtype, 16, name)
    store.ensure_rows(len(initial))
    store.scatter(np.arange(len(initial)), initial)
    return _table(name, dim, store)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float16, ml_dtypes.bfloat16])
@pytest.mark.parametrize(
    "rule",
    [Adam(amsgrad=True), RowWiseAdagrad(), RowWiseAdagrad(lr_decay=0.1), Ftrl(l1=0.01)],
    ids=repr,
)
def test_updater_on_gpu_tables_equals_the_cpu(cp, dtype, rule):
    initial = np.random.default_rng(0).uniform(-1, 1, (100, 8)).astype(np.float32)
    cpu, gpu = cpu_table("emb", 8, dtype, initial), gpu_table("emb", 8, dtype, initial, cp)
    updaters = [SparseUpdater(rule, [t], accumulation_steps=2) for t in (cpu, gpu)]
    rng = np.random.default_rng(1)
    for _ in range(8):
        rows = rng.integers(-1, 100, 64)
        grads = rng.standard_normal((64, 8)).astype(np.float32)
        updaters[0].accumulate(cpu, rows, grads)
        updaters[1].accumulate(gpu, cp.asarray(rows), cp.asarray(grads))
        for updater in updaters:
            updater.step(lr=0.05)
    everything = np.arange(100)
    for field in cpu.store.fields:
        expected = cpu.store.gather(everything, field, dtype=np.float32)
        got = gpu.store.gather(cp.asarray(everything), field, dtype=np.float32)
        np.testing.assert_allclose(cp.asnumpy(got), expected, **CLOSE)
    assert updaters[0].steps == updaters[1].steps == {"emb": 4}


def test_every_built_in_rule_has_a_fused_kernel():
    from recis.core.cuda import optim

    built_in = {SGD, Adagrad, RowWiseAdagrad, Adam, AdamW, AdamWTF, Ftrl}
    assert set(optim._UPDATES) == built_in
    assert all(issubclass(rule, Rule) for rule in built_in)


def blocks_and_arrays(cp, rule, dim: int, rows: int):
    """A GPU row store holding random rows and slots (block_rows 16: several blocks), and the
    same values as NumPy arrays."""
    rng = np.random.default_rng(dim)
    params = rng.uniform(-1, 1, (rows, dim)).astype(np.float32)
    slots = {
        name: np.abs(rng.normal(0, 0.3, (rows, *spec.shape))).astype(np.float32)
        for name, spec in rule.slots(dim).items()
    }
    store = RowStore(dim, np.float32, 16, "t", "cuda")
    for name, spec in rule.slots(dim).items():
        store.add_slot(name, spec.shape, spec.dtype, spec.init)
    store.ensure_rows(rows)
    everything = cp.arange(rows)
    store.scatter(everything, cp.asarray(params))
    for name, value in slots.items():
        store.scatter(everything, cp.asarray(value), name)
    return store, params, slots


@pytest.mark.gpu
@pytest.mark.parametrize("rule", RULES, ids=repr)
@pytest.mark.parametrize("dim", [1, 8, 33])
@pytest.mark.parametrize("divisor", [1, 3])
def test_updates_in_place_in_the_blocks_equal_the_cpu_rule(cp, rule, dim, divisor):
    from recis.core.cuda import optim

    rows = 40
    store, params, slots = blocks_and_arrays(cp, rule, dim, rows)
    assert optim.updates_in_blocks(rule, store)
    counts = optim.NonfiniteCounts()
    rng = np.random.default_rng(7)
    for step in range(1, 4):
        touched = rng.permutation(rows)[:25]
        touched[::6] = -1  # no row: left alone
        grads = rng.normal(0, 0.5, (touched.size, dim)).astype(np.float32)
        kept = touched >= 0
        lr = 0.05 * step
        expected, expected_slots = rule.update(
            params[touched[kept]], grads[kept] / np.float32(divisor),
            pick(slots, touched[kept]), step, lr,
        )  # fmt: skip
        params[touched[kept]] = expected
        for name, value in expected_slots.items():
            slots[name][touched[kept]] = value
        optim.update_in_blocks(
            rule, store, cp.asarray(touched), cp.asarray(grads), divisor, step, lr, counts, None
        )
    everything = cp.arange(rows)
    exact = not (isinstance(rule, Ftrl) and rule.learning_rate_power != -0.5)
    check = np.testing.assert_array_equal if exact else np.testing.assert_allclose
    check(cp.asnumpy(store.gather(everything)), params)
    for name, value in slots.items():
        check(cp.asnumpy(store.gather(everything, name)), value)
    assert int(counts.skipped[0]) == 0


@pytest.mark.gpu
@pytest.mark.parametrize("rule", [SGD(), RowWiseAdagrad(), Adam(amsgrad=True)], ids=repr)
def test_updates_in_place_skip_or_refuse_non_finite_gradients(cp, rule):
    from recis.core.cuda import optim
    from recis.core.cuda.host_mirror import HostMirror

    store, params, slots = blocks_and_arrays(cp, rule, 4, 10)
    counts = optim.NonfiniteCounts()
    touched = np.array([3, 5, 7, -1])
    grads = np.ones((4, 4), np.float32)
    grads[1, 2], grads[3, 0] = np.nan, np.inf  # row 5, and a gradient without a row
    expected, _ = rule.update(params[[3, 7]], grads[[0, 2]], pick(slots, [3, 7]), 1, 0.1)
    args = (cp.asarray(touched), cp.asarray(grads), 1, 1, 0.1, counts)
    optim.update_in_blocks(rule, store, *args, None)  # skip: rows 3 and 7 change
    got = cp.asnumpy(store.gather(cp.arange(10)))
    np.testing.assert_array_equal(got[[3, 7]], expected)
    np.testing.assert_array_equal(got[5], params[5])
    assert int(counts.skipped[0]) == 1
    mirror = HostMirror(2)
    optim.update_in_blocks(rule, store, *args, mirror.address())  # raise: nothing changes
    np.testing.assert_array_equal(cp.asnumpy(store.gather(cp.arange(10))), got)
    assert mirror.values.tolist() == [1, 1]  # one bad row, reported
    assert cp.asnumpy(counts.counters).tolist() == [0, 1] and counts.parity == 0  # used in turn
    optim.update_in_blocks(rule, store, cp.asarray(touched[[0, 2]]), cp.asarray(grads[[0, 2]]),
                           1, 2, 0.1, counts, mirror.address())  # fmt: skip
    assert mirror.values.tolist() == [0, 1]  # the next update counts afresh
    assert not np.array_equal(cp.asnumpy(store.gather(cp.arange(10)))[3], got[3])


def test_every_built_in_rule_updates_in_place():
    from recis.core.cuda import optim

    assert set(optim._BLOCK_UPDATES) == set(optim._UPDATES)

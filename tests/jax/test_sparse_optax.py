"""Sparse optimizers as optax transformations over rows: RecIS's rules bit for bit as their
engine twins, optax's own optimizers, chains, clipping and schedules as sparse rules."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="the JAX backend needs jax")
optax = pytest.importorskip("optax", reason="the transformations are optax's")

import jax.numpy as jnp  # noqa: E402

from recis.backends.jax import SparseOptimizer, rules, sparse_optax  # noqa: E402
from recis.core.initializers import NormalInitializer  # noqa: E402
from recis.core.table import EmbeddingTable  # noqa: E402

DIM = 5
SCHEDULE = optax.exponential_decay(0.05, transition_steps=1, decay_rate=0.7)

TWINS = {
    "sgd": (rules.SGD(weight_decay=0.01), sparse_optax.sgd(SCHEDULE, weight_decay=0.01)),
    "adagrad": (
        rules.Adagrad(initial_accumulator_value=0.1, weight_decay=0.01, lr_decay=0.1),
        sparse_optax.adagrad(
            SCHEDULE, initial_accumulator_value=0.1, weight_decay=0.01, lr_decay=0.1
        ),
    ),
    "rowwise_adagrad": (
        rules.RowWiseAdagrad(weight_decay=0.01),
        sparse_optax.rowwise_adagrad(SCHEDULE, weight_decay=0.01),
    ),
    "adam": (
        rules.Adam(weight_decay=0.01, amsgrad=True),
        sparse_optax.adam(SCHEDULE, weight_decay=0.01, amsgrad=True),
    ),
    "adamw": (rules.AdamW(weight_decay=0.1), sparse_optax.adamw(SCHEDULE, weight_decay=0.1)),
    "adamw_tf": (
        rules.AdamWTF(weight_decay=0.01),
        sparse_optax.adamw_tf(SCHEDULE, weight_decay=0.01),
    ),
    "ftrl": (
        rules.Ftrl(l1=0.01, l2=0.1, beta=0.5),
        sparse_optax.ftrl(SCHEDULE, l1=0.01, l2=0.1, beta=0.5),
    ),
}


def _table():
    return EmbeddingTable("t", DIM, initializer=NormalInitializer(std=0.5), seed=1)


def _train(optimizer_of, steps=4, seed=0):
    """A table trained ``steps`` updates with random gradients of random ids (some rows skip
    updates); its ids, rows and every slot by its value order."""
    table = _table()
    optimizer = optimizer_of(table)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        ids = rng.choice(30, size=12, replace=False)
        rows = table.find_or_insert(ids).rows
        table.grads.add(rows, rng.normal(0, 2, (12, DIM)).astype(np.float32), distinct=True)
        optimizer.step()
    state = table.state_dict()
    others = {name: value for name, value in state.items() if name not in ("id", "embedding")}
    return state["id"], state["embedding"], others


@pytest.mark.parametrize("name", sorted(TWINS))
def test_recis_rules_as_optax_transformations_are_bit_exact_twins(name):
    rule, tx = TWINS[name]
    ids, rows, others = _train(lambda t: SparseOptimizer(t, rule, SCHEDULE))
    chained = optax.chain(optax.identity(), tx)  # in a chain too
    for transformation, prefix in ((tx, "optax.slots."), (chained, "optax.1.slots.")):
        twin_ids, twin_rows, twin_others = _train(partial(_optimizer, transformation))
        assert np.array_equal(twin_ids, ids)
        assert np.array_equal(twin_rows, rows), name
        assert len(twin_others) == len(others)
        for key, value in others.items():
            twin_key = key if key in twin_others else prefix + key
            assert np.array_equal(twin_others[twin_key], value), (name, key)


def _optimizer(transformation, table):
    return SparseOptimizer(table, transformation)


def test_a_twin_is_an_optax_transformation_of_rows_on_its_own():
    rule, tx = TWINS["adam"]
    rng = np.random.default_rng(3)
    rows = rng.normal(size=(4, DIM)).astype(np.float32)
    grads = rng.normal(size=(4, DIM)).astype(np.float32)
    updates, state = tx.update(grads, tx.init(rows), rows)
    new_rows, slots = rule.update(rows, grads, rule.init(4, DIM), 1, float(SCHEDULE(0)))
    assert np.array_equal(np.asarray(state.rows.value), new_rows)
    assert np.array_equal(np.asarray(state.slots["exp_avg"]), slots["exp_avg"])
    np.testing.assert_allclose(np.asarray(optax.apply_updates(rows, updates)), new_rows, atol=1e-7)
    plain, constant = rules.Adam(), sparse_optax.adam(0.05)  # a constant rate: same bits in jit
    jitted = jax.jit(constant.update)(grads, constant.init(rows), rows)[1]
    assert np.array_equal(
        np.asarray(jitted.rows.value),
        plain.update(rows, grads, plain.init(4, DIM), 1, 0.05)[0],
    )
    scheduled = jax.jit(tx.update)(grads, tx.init(rows), rows)[1]  # the rate as float32
    np.testing.assert_allclose(np.asarray(scheduled.rows.value), new_rows, rtol=1e-6)


def test_optax_adagrad_itself_is_a_sparse_rule():
    """Every row gets a gradient at every step: the lazy sparse update is optax.adagrad's."""
    table = _table()
    ids = np.arange(8)
    rows = table.find_or_insert(ids).rows
    dense = jnp.asarray(table.gather(rows))
    tx = optax.adagrad(0.1)
    optimizer = SparseOptimizer(table, tx)
    state = tx.init(dense)
    rng = np.random.default_rng(4)
    for _ in range(3):
        grads = rng.normal(size=(8, DIM)).astype(np.float32)
        table.grads.add(rows, grads, distinct=True)
        optimizer.step()
        updates, state = tx.update(jnp.asarray(grads), state, dense)
        dense = optax.apply_updates(dense, updates)
    assert np.array_equal(table.gather(rows), np.asarray(dense))
    assert "optax.0.sum_of_squares" in table.store.fields


def test_global_norm_clipping_and_schedules_compose_in_a_chain():
    """clip_by_global_norm over a table's gathered gradients, then an optax schedule driving
    RecIS's SGD: the rows move by lr(count) times the clipped gradient."""
    table = _table()
    rows = table.find_or_insert(np.array([1, 2])).rows
    before = table.gather(rows)
    schedule = optax.piecewise_constant_schedule(0.5, {1: 0.1})
    optimizer = SparseOptimizer(
        table, optax.chain(optax.clip_by_global_norm(1.0), sparse_optax.sgd(schedule))
    )
    grads = np.zeros((2, DIM), np.float32)
    grads[0, 0], grads[1, 1] = 3.0, 4.0  # norm 5
    for _ in range(2):
        table.grads.add(rows, grads, distinct=True)
        optimizer.step()
    moved = before - table.gather(rows)
    np.testing.assert_allclose(moved[0, 0], (0.5 + 0.05) * 3 / 5, rtol=1e-6)
    np.testing.assert_allclose(moved[1, 1], (0.5 + 0.05) * 4 / 5, rtol=1e-6)


def test_transformation_slots_are_saved_and_loaded_with_the_table():
    trained = []

    def optimizer_of(table):
        trained.append(table)
        return SparseOptimizer(table, optax.adam(0.01))

    _train(optimizer_of, steps=2)
    state = trained[0].state_dict()
    assert {"optax.0.mu", "optax.0.nu"} <= set(state)
    fresh = _table()
    SparseOptimizer(fresh, optax.adam(0.01))  # adds the slots
    fresh.load_state_dict(state)
    again = fresh.state_dict()
    assert all(np.array_equal(again[k], state[k]) for k in state)


def test_misuse_names_what_to_use_instead():
    table = _table()
    with pytest.raises(TypeError, match=r"pass it alone, e.g. SparseOptimizer\(tables, optax"):
        SparseOptimizer(table, optax.adagrad(0.1), 0.1)
    with pytest.raises(TypeError, match="the rule Adagrad needs a learning_rate"):
        SparseOptimizer(table, rules.Adagrad())
    with pytest.raises(TypeError, match=r"or an optax transformation \(e.g. optax.adagrad"):
        SparseOptimizer(table, "adagrad", 0.1)
    keeps_rows = optax.GradientTransformation(
        lambda p: {"copy": p + jnp.arange(p.shape[1])}, lambda u, s, p: (u, s)
    )
    with pytest.raises(ValueError, match=r"its initial value depends on the rows"):
        SparseOptimizer(table, keeps_rows)

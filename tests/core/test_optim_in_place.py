"""The in-place CPU optimizer kernels against their twin, gather → NumPy rule → scatter."""

from __future__ import annotations

from dataclasses import dataclass

import ml_dtypes
import numpy as np
import pytest

from recis.core.optim import SGD, Adagrad, Adam, AdamW, AdamWTF, Ftrl, RowWiseAdagrad
from recis.core.optim.in_place import update_by_copies, update_in_place
from recis.core.row_store import RowStore

DIM, BLOCK_ROWS, NUM_ROWS = 5, 8, 40

RULES = [
    SGD(),
    SGD(weight_decay=0.1),
    Adagrad(),
    Adagrad(weight_decay=0.05, lr_decay=0.3, initial_accumulator_value=0.2, eps=1e-6),
    Adam(),
    Adam(weight_decay=0.02, amsgrad=True),
    AdamW(),
    AdamW(weight_decay=0.3, amsgrad=True, beta1=0.5, beta2=0.9),
    AdamWTF(),
    AdamWTF(weight_decay=0.1, eps=1e-3),
]


def make_store(rule, seed: int, dtype=np.float32) -> RowStore:
    """A store whose rows and slots all hold random, non-zero values."""
    rng = np.random.default_rng(seed)
    store = RowStore(DIM, dtype=dtype, block_rows=BLOCK_ROWS)
    for name, spec in rule.slots(DIM).items():
        store.add_slot(name, spec.shape, spec.dtype, spec.init)
    store.ensure_rows(NUM_ROWS)
    every = np.arange(NUM_ROWS)
    for name, field in store.fields.items():
        values = rng.normal(size=(NUM_ROWS, *field.shape)).astype(np.float32)
        if name != "embedding":
            values = np.abs(values)  # second moments and sums are non-negative
        store.scatter(every, values.astype(field.dtype), name)
    return store


def field_bits(store: RowStore) -> dict[str, np.ndarray]:
    every = np.arange(NUM_ROWS)
    return {
        name: store.gather(every, name, dtype=field.storage_dtype)
        for name, field in store.fields.items()
    }


@pytest.mark.parametrize("rule", RULES, ids=repr)
def test_in_place_update_equals_its_twin_bit_for_bit(rule):
    fast, twin = make_store(rule, 0), make_store(rule, 0)
    rng = np.random.default_rng(1)
    for step, lr in enumerate((0.1, 0.03, 1.5), start=1):
        rows = rng.permutation(NUM_ROWS)[:17]  # distinct, over several blocks, unordered
        grads = (rng.normal(size=(rows.size, DIM)) * 10.0 ** rng.integers(-6, 3)).astype(np.float32)
        assert update_in_place(rule, fast, rows, grads, step, lr)
        update_by_copies(rule, twin, rows, grads, step, lr)
        for name, bits in field_bits(twin).items():
            np.testing.assert_array_equal(field_bits(fast)[name], bits, err_msg=name)


@pytest.mark.parametrize("rule", RULES[::3], ids=repr)
def test_rows_without_gradients_do_not_change(rule):
    store, before = make_store(rule, 2), make_store(rule, 2)
    rows = np.array([3, 17, 33])
    update_in_place(rule, store, rows, np.ones((3, DIM), np.float32), 1, 0.1)
    others = np.setdiff1d(np.arange(NUM_ROWS), rows)
    for name in store.fields:
        np.testing.assert_array_equal(store.gather(others, name), before.gather(others, name))
        assert not np.array_equal(store.gather(rows, name), before.gather(rows, name)), name


@dataclass(frozen=True)
class MyAdam(Adam):
    """A user's subclass: its update may differ, so it never takes a built-in kernel."""


@pytest.mark.parametrize("rule", [RowWiseAdagrad(), Ftrl(), MyAdam()], ids=repr)
def test_rules_without_a_kernel_are_left_to_the_twin(rule):
    store = make_store(rule, 3)
    before = field_bits(store)
    assert not update_in_place(rule, store, np.array([1]), np.ones((1, DIM), np.float32), 1, 0.1)
    for name, bits in before.items():
        np.testing.assert_array_equal(field_bits(store)[name], bits)


@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16])
def test_half_precision_rows_are_left_to_the_twin(dtype):
    store = make_store(Adam(), 4, dtype)
    assert not update_in_place(Adam(), store, np.array([1]), np.ones((1, DIM), np.float32), 1, 0.1)


def test_bad_rows_and_gradients_are_refused_naming_the_store():
    store = make_store(SGD(), 5)
    with pytest.raises(IndexError, match=r"RowStore 'table': rows must lie in \[0, 40\)"):
        update_in_place(SGD(), store, np.array([40]), np.ones((1, DIM), np.float32), 1, 0.1)
    with pytest.raises(ValueError, match=r"grads must be \[2, 5\]"):
        update_in_place(SGD(), store, np.array([0, 1]), np.ones((1, DIM), np.float32), 1, 0.1)

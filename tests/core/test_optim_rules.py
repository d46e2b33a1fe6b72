"""Sparse optimizer rules against torch.optim and against their written formulas."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal

from recis.core.optim import (
    SGD,
    Adagrad,
    Adam,
    AdamW,
    AdamWTF,
    Ftrl,
    RowWiseAdagrad,
    SlotSpec,
)

ROWS, DIM, STEPS = 20, 4, 50
TOUCHED_PER_STEP, REPEATED_PER_STEP = 8, 3


def make_batches(seed: int, every_row: bool = False):
    """Ids (with duplicates) and one gradient per occurrence, for each step."""
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(STEPS):
        distinct = np.arange(ROWS) if every_row else rng.choice(ROWS, TOUCHED_PER_STEP, False)
        ids = rng.permutation(np.concatenate([distinct, distinct[:REPEATED_PER_STEP]]))
        grads = rng.normal(0.0, 0.5, (ids.size, DIM)).astype(np.float32)
        batches.append((ids.astype(np.int64), grads))
    return batches


def initial_params(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 0.3, (ROWS, DIM)).astype(np.float32)


def constant_lrs(lr: float) -> list[float]:
    return [lr] * STEPS


def changing_lrs(lr: float) -> list[float]:
    return [lr * (0.5 + 0.5 * math.cos(step / 7)) + lr / 10 for step in range(STEPS)]


class LazyTable:
    """What the engine does around a rule: dedupe, sum, gather, update, scatter."""

    def __init__(self, rule, params: np.ndarray):
        self.rule, self.params, self.step = rule, params.copy(), 0
        self.slots = rule.init(ROWS, DIM)

    def apply(self, ids: np.ndarray, grads: np.ndarray, lr: float) -> None:
        rows, inverse = np.unique(ids, return_inverse=True)
        summed = np.zeros((rows.size, DIM), np.float32)
        np.add.at(summed, inverse, grads)
        self.step += 1
        slots = {name: slot[rows] for name, slot in self.slots.items()}
        new_params, new_slots = self.rule.update(self.params[rows], summed, slots, self.step, lr)
        self.params[rows] = new_params
        for name, slot in new_slots.items():
            self.slots[name][rows] = slot


def run_rule(rule, params, batches, lrs) -> LazyTable:
    """Apply ``rule`` over all batches, checking that untouched rows and slots never change."""
    table = LazyTable(rule, params)
    for (ids, grads), lr in zip(batches, lrs, strict=True):
        untouched = ~np.isin(np.arange(ROWS), ids)
        before = {"params": table.params[untouched], **_rows(table.slots, untouched)}
        table.apply(ids, grads, lr)
        after = {"params": table.params[untouched], **_rows(table.slots, untouched)}
        for name, value in before.items():
            assert_array_equal(after[name], value, err_msg=name)
    return table


def _rows(slots: dict, mask: np.ndarray) -> dict:
    return {name: slot[mask] for name, slot in slots.items()}


# ---------------------------------------------------------------------------------------------
# Against torch.optim


def run_torch(make_optimizer, params, batches, lrs, sparse: bool):
    param = torch.nn.Parameter(torch.from_numpy(params.copy()))
    optimizer = make_optimizer([param])
    for (ids, grads), lr in zip(batches, lrs, strict=True):
        optimizer.param_groups[0]["lr"] = lr
        index, values = torch.from_numpy(ids), torch.from_numpy(grads)
        with torch.sparse.check_sparse_tensor_invariants(enable=True):
            if sparse:
                param.grad = torch.sparse_coo_tensor(index[None], values, (ROWS, DIM))
            else:
                param.grad = torch.zeros(ROWS, DIM).index_add_(0, index, values)
            optimizer.step()
    return param.detach().numpy(), optimizer.state[param]


TORCH_CASES = {
    # name: (rule, torch optimizer factory, sparse gradients, base lr)
    "sgd": (SGD(), lambda ps: torch.optim.SGD(ps, lr=0.1), True, 0.1),
    "sgd_weight_decay": (
        SGD(weight_decay=0.1),
        lambda ps: torch.optim.SGD(ps, lr=0.1, weight_decay=0.1),
        False,
        0.1,
    ),
    "adagrad": (
        Adagrad(initial_accumulator_value=0.1),
        lambda ps: torch.optim.Adagrad(ps, lr=0.1, initial_accumulator_value=0.1),
        True,
        0.1,
    ),
    "adagrad_lr_decay": (
        Adagrad(lr_decay=0.05, eps=1e-6),
        lambda ps: torch.optim.Adagrad(ps, lr=0.1, lr_decay=0.05, eps=1e-6),
        True,
        0.1,
    ),
    "adagrad_weight_decay": (
        Adagrad(weight_decay=0.1, lr_decay=0.01),
        lambda ps: torch.optim.Adagrad(ps, lr=0.1, weight_decay=0.1, lr_decay=0.01),
        False,
        0.1,
    ),
    "adam": (Adam(), lambda ps: torch.optim.SparseAdam(ps, lr=0.05), True, 0.05),
    "adam_weight_decay": (
        Adam(beta1=0.8, beta2=0.99, eps=1e-3, weight_decay=0.1),
        lambda ps: torch.optim.Adam(ps, lr=0.05, betas=(0.8, 0.99), eps=1e-3, weight_decay=0.1),
        False,
        0.05,
    ),
    "adam_weight_decay_amsgrad": (
        Adam(weight_decay=0.1, amsgrad=True),
        lambda ps: torch.optim.Adam(ps, lr=0.05, weight_decay=0.1, amsgrad=True),
        False,
        0.05,
    ),
    "adamw": (
        AdamW(weight_decay=0.2),
        lambda ps: torch.optim.AdamW(ps, lr=0.05, weight_decay=0.2),
        False,
        0.05,
    ),
    "adamw_amsgrad": (
        AdamW(beta2=0.9, eps=1e-6, amsgrad=True),
        lambda ps: torch.optim.AdamW(ps, lr=0.05, betas=(0.9, 0.9), eps=1e-6, amsgrad=True),
        False,
        0.05,
    ),
    # torch's SparseAdam adds eps outside the bias correction, as AdamWTF does; a large eps
    # makes that difference from Adam visible.
    "adamwtf_no_decay_vs_sparse_adam": (
        AdamWTF(weight_decay=0.0, eps=1e-2),
        lambda ps: torch.optim.SparseAdam(ps, lr=0.05, eps=1e-2),
        True,
        0.05,
    ),
}


@pytest.mark.parametrize("schedule", [constant_lrs, changing_lrs], ids=["constant", "changing"])
@pytest.mark.parametrize("case", list(TORCH_CASES))
def test_rule_matches_torch(case, schedule):
    rule, make_optimizer, sparse, lr = TORCH_CASES[case]
    params, batches, lrs = initial_params(1), make_batches(2, every_row=not sparse), schedule(lr)
    expected, torch_state = run_torch(make_optimizer, params, batches, lrs, sparse)
    table = run_rule(rule, params, batches, lrs)
    assert_allclose(table.params, expected, rtol=1e-5, atol=1e-6)
    for name, slot in table.slots.items():
        assert_allclose(slot, torch_state[name].numpy(), rtol=1e-5, atol=1e-6, err_msg=name)


def test_sparse_adam_differs_from_adam_through_eps():
    """Guards the case above: with a large eps, Adam and torch's SparseAdam really differ."""
    params, batches, lrs = initial_params(1), make_batches(2), constant_lrs(0.05)
    make = lambda ps: torch.optim.SparseAdam(ps, lr=0.05, eps=1e-2)  # noqa: E731
    expected, _ = run_torch(make, params, batches, lrs, sparse=True)
    table = run_rule(Adam(eps=1e-2), params, batches, lrs)
    assert np.abs(table.params - expected).max() > 1e-3


def test_changing_lr_is_honoured():
    params, batches = initial_params(3), make_batches(4)
    constant = run_rule(Adam(), params, batches, constant_lrs(0.05)).params
    changing = run_rule(Adam(), params, batches, changing_lrs(0.05)).params
    assert np.abs(constant - changing).max() > 1e-2


# ---------------------------------------------------------------------------------------------
# Against the written formulas: one row at a time, float64


def adagrad_row(rule, w, g, state, step, lr):
    g = g + rule.weight_decay * w
    state["sum"] = state["sum"] + g * g
    clr = lr / (1 + (step - 1) * rule.lr_decay)
    return w - clr * g / (np.sqrt(state["sum"]) + rule.eps)


def row_wise_adagrad_row(rule, w, g, state, step, lr):
    g = g + rule.weight_decay * w
    state["sum"] = state["sum"] + sum(x * x for x in g) / len(g)
    return w - lr * g / (math.sqrt(state["sum"]) + rule.eps)


def adamwtf_row(rule, w, g, state, step, lr):
    b1, b2 = rule.beta1, rule.beta2
    w = w * (1 - rule.weight_decay)
    state["exp_avg"] = b1 * state["exp_avg"] + (1 - b1) * g
    state["exp_avg_sq"] = b2 * state["exp_avg_sq"] + (1 - b2) * g * g
    alpha = -lr * math.sqrt(1 - b2**step) / (1 - b1**step)
    return w + alpha * state["exp_avg"] / (np.sqrt(state["exp_avg_sq"]) + rule.eps)


def ftrl_row(rule, w, g, state, step, lr):
    p = rule.learning_rate_power
    accumulator = state["accumulator"] + g * g
    sigma = (accumulator**-p - state["accumulator"] ** -p) / lr
    state["accumulator"] = accumulator
    state["linear"] = state["linear"] + g - sigma * w
    new_w = np.zeros_like(w)
    for i, linear in enumerate(state["linear"]):
        quadratic = accumulator[i] ** -p / lr + 2 * rule.l2 + rule.beta / lr
        if abs(linear) > rule.l1:
            new_w[i] = (rule.l1 * np.sign(linear) - linear) / quadratic
    return new_w


def run_formula(rule, row_update, params, batches, lrs):
    weights = params.astype(np.float64)
    states = [
        {name: np.full(spec.shape, spec.init, np.float64) for name, spec in rule.slots(DIM).items()}
        for _ in range(ROWS)
    ]
    for step, ((ids, grads), lr) in enumerate(zip(batches, lrs, strict=True), start=1):
        summed = {}
        for row, grad in zip(ids.tolist(), grads.astype(np.float64), strict=True):
            summed[row] = summed.get(row, 0.0) + grad
        for row, grad in summed.items():
            weights[row] = row_update(rule, weights[row], grad, states[row], step, lr)
    return weights, states


FORMULA_CASES = {
    "adagrad_decays": (
        Adagrad(initial_accumulator_value=0.1, weight_decay=0.05, lr_decay=0.02),
        adagrad_row,
    ),
    "row_wise_adagrad": (RowWiseAdagrad(), row_wise_adagrad_row),
    "row_wise_adagrad_decay": (
        RowWiseAdagrad(initial_accumulator_value=0.1, eps=1e-6, weight_decay=0.05),
        row_wise_adagrad_row,
    ),
    "adamwtf": (AdamWTF(), adamwtf_row),
    "adamwtf_custom": (AdamWTF(beta1=0.5, beta2=0.9, eps=1e-6, weight_decay=0.05), adamwtf_row),
    "ftrl": (Ftrl(), ftrl_row),
    "ftrl_regularised": (Ftrl(l1=0.02, l2=0.01, beta=0.1), ftrl_row),
    "ftrl_power": (
        Ftrl(learning_rate_power=-0.3, initial_accumulator_value=0.0, l1=0.01),
        ftrl_row,
    ),
}


@pytest.mark.parametrize("schedule", [constant_lrs, changing_lrs], ids=["constant", "changing"])
@pytest.mark.parametrize("case", list(FORMULA_CASES))
def test_rule_matches_formula(case, schedule):
    rule, row_update = FORMULA_CASES[case]
    params, batches, lrs = initial_params(5), make_batches(6), schedule(0.1)
    expected, states = run_formula(rule, row_update, params, batches, lrs)
    table = run_rule(rule, params, batches, lrs)
    assert_allclose(table.params, expected, rtol=1e-5, atol=1e-6)
    for name, slot in table.slots.items():
        expected_slot = np.stack([state[name] for state in states])
        assert_allclose(slot, expected_slot, rtol=1e-5, atol=1e-6, err_msg=name)


def test_ftrl_l1_produces_exact_zeros():
    params, batches = initial_params(5), make_batches(6)
    table = run_rule(Ftrl(l1=0.5), params, batches, constant_lrs(0.1))
    touched = np.isin(np.arange(ROWS), np.concatenate([ids for ids, _ in batches]))
    assert np.count_nonzero(table.params[touched] == 0) > 0
    assert np.count_nonzero(table.params[touched]) > 0


# ---------------------------------------------------------------------------------------------
# Contract: slots, purity, row independence, dtypes

ALL_RULES = [
    SGD(weight_decay=0.1),
    Adagrad(initial_accumulator_value=0.1, weight_decay=0.1, lr_decay=0.1),
    RowWiseAdagrad(initial_accumulator_value=0.1, weight_decay=0.1),
    Adam(weight_decay=0.1, amsgrad=True),
    AdamW(amsgrad=True),
    AdamWTF(),
    Ftrl(l1=0.01, l2=0.01, beta=0.1),
]


def random_update_args(rule, rows: int, seed: int):
    rng = np.random.default_rng(seed)
    params = rng.normal(size=(rows, DIM)).astype(np.float32)
    grads = rng.normal(size=(rows, DIM)).astype(np.float32)
    slots = {
        name: rng.uniform(0.1, 1.0, (rows, *spec.shape)).astype(np.float32)
        for name, spec in rule.slots(DIM).items()
    }
    return params, grads, slots


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (SGD(), {}),
        (Adagrad(initial_accumulator_value=0.3), {"sum": ((DIM,), 0.3)}),
        (RowWiseAdagrad(initial_accumulator_value=0.2), {"sum": ((), 0.2)}),
        (Adam(), {"exp_avg": ((DIM,), 0.0), "exp_avg_sq": ((DIM,), 0.0)}),
        (
            AdamW(amsgrad=True),
            {n: ((DIM,), 0.0) for n in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")},
        ),
        (AdamWTF(), {"exp_avg": ((DIM,), 0.0), "exp_avg_sq": ((DIM,), 0.0)}),
        (
            Ftrl(initial_accumulator_value=0.4),
            {"accumulator": ((DIM,), 0.4), "linear": ((DIM,), 0.0)},
        ),
    ],
    ids=lambda value: "slots" if isinstance(value, dict) else type(value).__name__,
)
def test_slot_specs_and_init(rule, expected):
    specs = rule.slots(DIM)
    assert specs == {
        name: SlotSpec(shape, np.dtype(np.float32), init)
        for name, (shape, init) in expected.items()
    }
    slots = rule.init(3, DIM)
    assert set(slots) == set(expected)
    for name, (shape, init) in expected.items():
        assert slots[name].dtype == np.float32
        assert_array_equal(slots[name], np.full((3, *shape), init, np.float32))


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda rule: type(rule).__name__)
def test_update_is_pure_and_float32(rule):
    params, grads, slots = random_update_args(rule, 6, seed=7)
    inputs = [params, grads, *slots.values()]
    copies = [array.copy() for array in inputs]
    new_params, new_slots = rule.update(params, grads, slots, 3, np.float64(0.1))
    for array, copy in zip(inputs, copies, strict=True):
        assert_array_equal(array, copy)
    assert set(new_slots) == set(slots)
    for output, shaped_like in [(new_params, params)] + [(new_slots[n], slots[n]) for n in slots]:
        assert output.dtype == np.float32
        assert output.shape == shaped_like.shape
        assert not any(np.shares_memory(output, array) for array in inputs)
    assert not np.array_equal(new_params, params)


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda rule: type(rule).__name__)
def test_rows_are_updated_independently(rule):
    """What makes lazy updates exact: a row's result depends on that row alone."""
    params, grads, slots = random_update_args(rule, 10, seed=8)
    all_params, all_slots = rule.update(params, grads, slots, 4, 0.1)
    subset = np.array([7, 2, 5])
    sub_slots = {name: slot[subset] for name, slot in slots.items()}
    sub_params, sub_new_slots = rule.update(params[subset], grads[subset], sub_slots, 4, 0.1)
    assert_array_equal(sub_params, all_params[subset])
    for name, slot in sub_new_slots.items():
        assert_array_equal(slot, all_slots[name][subset])


def test_row_with_zero_gradient_still_moves_under_adam():
    """Laziness is decided by which rows are passed, not by the gradient's value."""
    rule = Adam()
    slots = {"exp_avg": np.full((1, DIM), 0.5, np.float32), "exp_avg_sq": np.ones((1, DIM), "f4")}
    params = np.zeros((1, DIM), np.float32)
    new_params, _ = rule.update(params, np.zeros_like(params), slots, 2, 0.1)
    assert np.all(new_params < 0)


def test_empty_update_returns_empty_rows():
    rule = Adam(amsgrad=True)
    params, grads, slots = random_update_args(rule, 0, seed=9)
    new_params, new_slots = rule.update(params, grads, slots, 1, 0.1)
    assert new_params.shape == (0, DIM)
    assert all(slot.shape == (0, DIM) for slot in new_slots.values())


def test_rules_are_immutable_values():
    rule = Adagrad(initial_accumulator_value=1, eps=0)
    assert type(rule.initial_accumulator_value) is float
    assert rule == Adagrad(initial_accumulator_value=1.0, eps=0.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        rule.eps = 1.0


# ---------------------------------------------------------------------------------------------
# Validation


@pytest.mark.parametrize(
    ("make", "error", "name"),
    [
        (lambda: SGD(weight_decay=-0.1), ValueError, "weight_decay"),
        (lambda: SGD(weight_decay="0.1"), TypeError, "weight_decay"),
        (lambda: Adagrad(eps=-1e-10), ValueError, "eps"),
        (lambda: Adagrad(lr_decay=-0.1), ValueError, "lr_decay"),
        (lambda: Adagrad(initial_accumulator_value=-1.0), ValueError, "initial_accumulator_value"),
        (lambda: RowWiseAdagrad(weight_decay=-1.0), ValueError, "weight_decay"),
        (lambda: Adam(beta1=1.0), ValueError, "beta1"),
        (lambda: Adam(beta2=-0.1), ValueError, "beta2"),
        (lambda: Adam(beta1=float("nan")), ValueError, "beta1"),
        (lambda: Adam(amsgrad="yes"), TypeError, "amsgrad"),
        (lambda: AdamW(eps=-1.0), ValueError, "eps"),
        (lambda: AdamW(weight_decay=-0.01), ValueError, "weight_decay"),
        (lambda: AdamWTF(weight_decay=1.0), ValueError, "weight_decay"),
        (lambda: AdamWTF(beta2=1.5), ValueError, "beta2"),
        (lambda: Ftrl(learning_rate_power=0.5), ValueError, "learning_rate_power"),
        (lambda: Ftrl(initial_accumulator_value=-0.1), ValueError, "initial_accumulator_value"),
        (lambda: Ftrl(l1=-1.0), ValueError, "l1"),
        (lambda: Ftrl(l2=-1.0), ValueError, "l2"),
        (lambda: Ftrl(beta=-1.0), ValueError, "beta"),
    ],
)
def test_bad_hyper_parameters_are_rejected(make, error, name):
    with pytest.raises(error, match=f"^{name}:"):
        make()


def _bad_update(**changes):
    rule = Adam()
    args = dict(
        params=np.zeros((2, DIM), np.float32),
        grads=np.zeros((2, DIM), np.float32),
        slots=rule.init(2, DIM),
        step=1,
        lr=0.1,
    )
    args.update(changes)
    return lambda: rule.update(**args)


@pytest.mark.parametrize(
    ("call", "error", "name"),
    [
        (_bad_update(lr=-0.1), ValueError, "lr"),
        (_bad_update(lr=float("inf")), ValueError, "lr"),
        (_bad_update(lr=None), TypeError, "lr"),
        (_bad_update(step=0), ValueError, "step"),
        (_bad_update(step=1.0), TypeError, "step"),
        (_bad_update(step=True), TypeError, "step"),
        (_bad_update(params=np.zeros((2, DIM))), TypeError, "params"),
        (_bad_update(params=np.zeros(DIM, np.float32)), ValueError, "params"),
        (_bad_update(params=[[0.0] * DIM] * 2), TypeError, ""),
        (_bad_update(grads=np.zeros((3, DIM), np.float32)), ValueError, "grads"),
        (_bad_update(grads=np.zeros((2, DIM), np.float16)), TypeError, "grads"),
        (_bad_update(slots={"exp_avg": np.zeros((2, DIM), np.float32)}), ValueError, "slots"),
        (
            _bad_update(slots=dict(Adam().init(2, DIM), exp_avg=np.zeros((2, 1), np.float32))),
            ValueError,
            r"slots\['exp_avg'\]",
        ),
    ],
)
def test_bad_update_arguments_are_rejected(call, error, name):
    with pytest.raises(error, match=f"^{name}"):
        call()


def test_ftrl_needs_a_positive_lr():
    rule = Ftrl()
    params = np.zeros((1, DIM), np.float32)
    with pytest.raises(ValueError, match=r"^lr:"):
        rule.update(params, params, rule.init(1, DIM), 1, 0.0)


def test_row_wise_adagrad_lr_decay_divides_the_rate_by_the_step():
    rule = RowWiseAdagrad(lr_decay=0.5)
    params, grads = np.zeros((1, 1), np.float32), np.ones((1, 1), np.float32)
    slots = rule.init(1, 1)
    first, slots = rule.update(params, grads, slots, 1, 1.0)
    second, _ = rule.update(first, grads, slots, 2, 1.0)
    assert first.tolist() == [[-1.0]]
    np.testing.assert_allclose(second, [[-1.0 - (1 / 1.5) / np.sqrt(2.0)]], rtol=1e-6)

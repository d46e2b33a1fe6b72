"""Sparse optimizers as torch optimizers: schedulers, accumulation, state, non-finite grads."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recis.backends.torch.initializers import UniformInitializer
from recis.core.errors import NonFiniteGradientError
from recis.nn import HashTable
from recis.optim import AdamWTF, SparseAdagrad, SparseAdamW, SparseSGD


def _table(name="t"):
    return HashTable([-1, 2], name=name, initializer=UniformInitializer(-1, 1))


def _train(table, optimizer, steps, ids=(1, 2, 1)):
    for _ in range(steps):
        (table(torch.tensor(ids)) ** 2).sum().backward()
        optimizer.step()
        optimizer.zero_grad()


def test_lr_scheduler_drives_the_learning_rate():
    table = _table()
    optimizer = SparseSGD({"t": table}, lr=1.0)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    before = table(torch.tensor([5])).detach().clone()
    for expected_lr in (1.0, 0.5, 0.25):
        assert optimizer.param_groups[0]["lr"] == expected_lr
        table(torch.tensor([5])).sum().backward()
        optimizer.step()
        scheduler.step()
    np.testing.assert_allclose(table(torch.tensor([5])).detach(), before - 1.75, rtol=1e-6)


def test_gradient_accumulation_applies_the_mean_every_n_steps():
    accumulated, single = _table("t"), _table("t")  # same name: same initial rows
    slow = SparseAdagrad({"t": accumulated}, lr=0.1)
    slow.set_grad_accum_steps(3)
    for step in range(3):
        (accumulated(torch.tensor([4, 4])) * (step + 1)).sum().backward()
        slow.step()
        slow.zero_grad()
        assert slow.table_steps["t"] == (1 if step == 2 else 0)
    fast = SparseAdagrad({"t": single}, lr=0.1)
    (single(torch.tensor([4, 4])) * 2).sum().backward()  # mean of 1, 2, 3 times two occurrences
    fast.step()
    np.testing.assert_allclose(
        accumulated(torch.tensor([4])).detach(), single(torch.tensor([4])).detach(), rtol=1e-6
    )


def test_state_dict_round_trip_restores_lr_and_per_table_steps():
    tables = {"a": _table("a"), "b": _table("b")}
    optimizer = SparseAdamW(tables, lr=0.01)
    _train(tables["a"], optimizer, steps=3)
    state = optimizer.state_dict()
    assert state["tables"]["steps"] == {"a": 3, "b": 0}
    restored = SparseAdamW({"a": _table("a"), "b": _table("b")}, lr=0.5)
    restored.load_state_dict(state)
    assert restored.param_groups[0]["lr"] == 0.01 and restored.table_steps == {"a": 3, "b": 0}
    with pytest.raises(ValueError, match="state is for AdamW"):
        SparseSGD({"a": _table("a")}).load_state_dict(state)


def test_non_finite_gradients_raise_naming_the_table():
    table = _table("clicks")
    optimizer = SparseSGD({"clicks": table}, lr=0.1)
    (table(torch.tensor([1])) * float("nan")).sum().backward()
    with pytest.raises(NonFiniteGradientError, match="'clicks'"):
        optimizer.step()


def test_only_hash_tables_are_accepted():
    with pytest.raises(TypeError, match="'w': sparse optimizers update HashTables"):
        SparseSGD({"w": torch.nn.Parameter(torch.zeros(2))})


def test_adamw_tf_matches_the_written_rule():
    torch.manual_seed(0)
    p = torch.nn.Parameter(torch.randn(3))
    start = p.detach().clone()
    optimizer = AdamWTF([p], lr=0.1, weight_decay=0.01)
    grads = [torch.randn(3) for _ in range(4)]
    m = v = torch.zeros(3)
    expected = start.clone()
    for t, g in enumerate(grads, start=1):
        p.grad = g.clone()
        optimizer.step()
        expected = expected * (1 - 0.01)
        m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
        expected = expected - 0.1 * (1 - 0.999**t) ** 0.5 / (1 - 0.9**t) * m / (v.sqrt() + 1e-8)
    np.testing.assert_allclose(p.detach(), expected, rtol=1e-6)


@pytest.mark.parametrize(
    "optimizer",
    ["SparseAdam", "SparseAdamW", "SparseAdamWTF", "SparseSGD", "SparseAdagrad",
     "SparseRowwiseAdagrad", "SparseFtrl"],
)  # fmt: skip
def test_every_sparse_optimizer_takes_on_nonfinite(optimizer):
    import recis.optim
    from recis.nn import HashTable

    table = HashTable([-1, 2], name="t")
    sparse = getattr(recis.optim, optimizer)({"t": table}, on_nonfinite="skip")
    (table(torch.tensor([1, 2])) * torch.tensor([[float("nan")], [1.0]])).sum().backward()
    sparse.step()
    assert sparse.skipped_rows == {"t": 1}

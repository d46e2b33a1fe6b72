"""SparseUpdater: duplicate ids summed, accumulation, lazy rows, non-finite policy, vs torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recis.core.errors import NonFiniteGradientError
from recis.core.initializers import UniformInitializer
from recis.core.optim import SGD, Adagrad, Adam
from recis.core.optim.updater import SparseUpdater
from recis.core.table import EmbeddingTable

DIM = 4


def _table(name="emb"):
    return EmbeddingTable(name, DIM, UniformInitializer(-1, 1), seed=5, block_rows=8)


def test_fifty_steps_match_torch_sparse_optimizers_with_repeated_ids():
    vocab = np.arange(-10, 10) * 1_000_003  # raw ids, not row numbers
    rng = np.random.default_rng(0)
    for rule, torch_optimizer in [
        (Adagrad(eps=1e-10), lambda p: torch.optim.Adagrad([p], lr=0.1)),
        (Adam(), lambda p: torch.optim.SparseAdam([p], lr=0.05)),
        (SGD(), lambda p: torch.optim.SGD([p], lr=0.1)),
    ]:
        table = _table()
        weight = torch.nn.Parameter(torch.from_numpy(table.initial_values(vocab)))
        reference = torch_optimizer(weight)
        updater = SparseUpdater(rule, [table])
        for _ in range(50):
            positions = rng.integers(0, vocab.size, 12)  # repeats within the batch
            grads = rng.standard_normal((12, DIM)).astype(np.float32)
            rows = table.find_or_insert(vocab[positions]).rows
            updater.accumulate(table, rows, grads)
            updater.step(lr=reference.param_groups[0]["lr"])
            weight.grad = torch.sparse_coo_tensor(
                torch.from_numpy(positions)[None],
                torch.from_numpy(grads),
                weight.shape,
                check_invariants=True,
            )
            reference.step()
        np.testing.assert_allclose(
            table.gather(table.find(vocab)), weight.detach().numpy(), rtol=1e-5, atol=1e-6
        )
        assert updater.steps == {"emb": 50}


def test_rows_without_gradients_and_other_tables_do_not_change():
    touched, idle = _table("a"), _table("b")
    updater = SparseUpdater(Adam(), [touched, idle])
    rows = touched.find_or_insert(np.array([1, 2, 3])).rows
    idle_rows = idle.find_or_insert(np.array([1])).rows
    before = touched.gather(rows), idle.gather(idle_rows)
    updater.accumulate(touched, rows[:1], np.ones((1, DIM), np.float32))
    updater.step(lr=0.1)
    after = touched.gather(rows)
    assert not np.array_equal(after[0], before[0][0])
    np.testing.assert_array_equal(after[1:], before[0][1:])
    np.testing.assert_array_equal(idle.gather(idle_rows), before[1])
    assert updater.steps == {"a": 1, "b": 0}


def test_accumulation_over_micro_steps_divides_by_their_count():
    accumulated, single = _table(), _table()
    grads = [
        np.random.default_rng(i).standard_normal((3, DIM)).astype(np.float32) for i in range(4)
    ]
    ids = np.array([7, 8, 7])
    slow = SparseUpdater(Adagrad(), [accumulated], accumulation_steps=4)
    for step, grad in enumerate(grads):
        slow.accumulate(accumulated, accumulated.find_or_insert(ids).rows, grad)
        slow.step(lr=0.1)
        assert slow.steps["emb"] == (1 if step == 3 else 0)
    fast = SparseUpdater(Adagrad(), [single])
    fast.accumulate(single, single.find_or_insert(np.tile(ids, 4)).rows, np.concatenate(grads) / 4)
    fast.step(lr=0.1)
    np.testing.assert_allclose(
        accumulated.gather(accumulated.find(ids)), single.gather(single.find(ids)), rtol=1e-6
    )


def test_non_finite_gradients_raise_naming_the_table_or_are_skipped():
    table = _table("user_emb")
    rows = table.find_or_insert(np.array([1, 2])).rows
    grads = np.array([[np.nan] * DIM, [1.0] * DIM], np.float32)
    strict = SparseUpdater(SGD(), [table])
    strict.accumulate(table, rows, grads)
    with pytest.raises(NonFiniteGradientError, match="'user_emb': 1 of 2 rows"):
        strict.step(lr=0.1)

    lenient_table = _table("item_emb")
    rows = lenient_table.find_or_insert(np.array([1, 2])).rows
    before = lenient_table.gather(rows)
    lenient = SparseUpdater(SGD(), [lenient_table], on_nonfinite="skip")
    lenient.accumulate(lenient_table, rows, grads)
    lenient.step(lr=0.1)
    after = lenient_table.gather(rows)
    np.testing.assert_array_equal(after[0], before[0])
    np.testing.assert_allclose(after[1], before[1] - 0.1)
    assert lenient.skipped_rows == {"item_emb": 1}


def test_gradients_of_absent_ids_are_dropped():
    table = _table()
    updater = SparseUpdater(SGD(), [table])
    rows = table.find(np.array([5]))  # not inserted: row -1
    updater.accumulate(table, rows, np.ones((1, DIM), np.float32))
    updater.step(lr=0.1)
    assert len(table) == 0 and updater.steps["emb"] == 1


def test_state_dict_round_trip():
    table = _table()
    updater = SparseUpdater(Adam(), [table], accumulation_steps=2)
    updater.accumulate(table, table.find_or_insert(np.array([1])).rows, np.ones((1, DIM)))
    updater.step(lr=0.1)
    updater.step(lr=0.1)
    restored = SparseUpdater(Adam(), [_table()], accumulation_steps=2)
    restored.load_state_dict(updater.state_dict())
    assert restored.state_dict() == {
        "steps": {"emb": 1},
        "skipped_rows": {"emb": 0},
        "micro_step": 2,
    }
    with pytest.raises(KeyError, match="other"):
        restored.load_state_dict({"steps": {"other": 1}, "skipped_rows": {}, "micro_step": 0})


def test_bad_gradient_shape_names_the_table():
    table = _table("clicks")
    updater = SparseUpdater(SGD(), [table])
    with pytest.raises(ValueError, match=r"'clicks': gradients must be \[1, 4\]"):
        updater.accumulate(table, np.array([0]), np.ones((1, 3)))


def test_a_table_holding_the_rules_slots_keeps_them_and_unlike_slots_are_refused():
    table = EmbeddingTable("t", dim=2)
    rows = table.find_or_insert(np.array([4, 5])).rows
    first = SparseUpdater(Adagrad(), [table])
    table.grads.add(rows, np.ones((2, 2), np.float32))
    first.step(lr=0.1)
    slots = {name: table.gather(rows, name) for name in table.store.fields}
    SparseUpdater(Adagrad(), [table])  # e.g. an optimizer over a copied table
    for name, values in slots.items():
        assert np.array_equal(table.gather(rows, name), values), name
    assert slots["sum"][0, 0] > 0
    other = EmbeddingTable("u", dim=2)
    other.store.add_slot("sum", (2,), np.float64)
    with pytest.raises(ValueError, match="table 'u' holds a slot 'sum' unlike Adagrad's"):
        SparseUpdater(Adagrad(), [other])


def test_a_second_rule_with_another_initial_value_starts_only_later_rows_from_it():
    table = EmbeddingTable("refill", dim=2, block_rows=1)
    first = table.find_or_insert(np.array([1])).rows
    SparseUpdater(Adagrad(initial_accumulator_value=0.25), [table])
    SparseUpdater(Adagrad(initial_accumulator_value=0.75), [table])
    later = table.find_or_insert(np.array([2])).rows  # in a new block
    assert table.gather(first, "sum").tolist() == [[0.25, 0.25]]
    assert table.gather(later, "sum").tolist() == [[0.75, 0.75]]
    table.erase(np.array([1]))
    reused = table.find_or_insert(np.array([3])).rows  # the freed row, reset
    assert reused.tolist() == first.tolist()
    assert table.gather(reused, "sum").tolist() == [[0.75, 0.75]]

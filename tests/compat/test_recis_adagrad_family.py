"""RecIS's row-wise Adagrad signature and step entries, and the ``*Sum`` optimizers fed with
squared gradients."""

import math

import pytest
import torch

from recis.nn.modules.hashtable import HashTable
from recis.optim import (
    SparseAdagrad,
    SparseAdagradSum,
    SparseRowWiseAdagrad,
    SparseRowWiseAdagradSum,
)

STATE = "sparse_row_wise_adagrad_state_sum"


def _table(name, dim=2):
    return HashTable([-1, dim], name=name)


def _row(table, key):
    ids, rows, _ = table.snap_shot()
    return int(rows[ids.tolist().index(key)])


def test_lr_decay_and_weight_decay_follow_recis_formula():
    table = _table("rw_formula")
    optimizer = SparseRowWiseAdagrad(
        {"rw_formula": table},
        lr=0.5,
        lr_decay=1.0,
        initial_accumulator_value=1.0,
        weight_decay=0.5,
    )
    w, state = 0.0, 1.0
    for step in (1, 2):
        table(torch.tensor([3])).sum().backward()  # gradient 1 per element
        optimizer.step()
        optimizer.zero_grad()
        g = 1.0 + 0.5 * w
        state += g * g
        w -= 0.5 / (1 + (step - 1) * 1.0) * g / (math.sqrt(state) + 1e-10)
    assert table(torch.tensor([3]))[0].tolist() == pytest.approx([w, w])
    slot = table.slot_group().slot_by_name(STATE).value()
    assert slot[_row(table, 3)].tolist() == pytest.approx([state])


def test_maximize_flips_the_gradient():
    table = _table("rw_maximize")
    optimizer = SparseRowWiseAdagrad({"rw_maximize": table}, lr=0.5, maximize=True)
    table(torch.tensor([3])).sum().backward()
    optimizer.step()
    assert table(torch.tensor([3])).tolist() == [[0.5, 0.5]]


def test_step_entries_per_table_are_live_and_checked():
    first, second = _table("rw_first"), _table("rw_second")
    optimizer = SparseRowWiseAdagrad({"rw_first": first})
    assert set(optimizer.state_dict()) >= {"sparse_row_wise_adagrad_step", "rw_first"}
    optimizer.add_params({"rw_second": second})
    first(torch.tensor([1])).sum().backward()
    optimizer.step()
    state = optimizer.state_dict()
    live = state["sparse_row_wise_adagrad_rw_first_step"]
    assert live.tolist() == [1] and state["sparse_row_wise_adagrad_rw_second_step"].tolist() == [0]
    optimizer.load_state_dict({"sparse_row_wise_adagrad_rw_first_step": torch.tensor([5])})
    assert live.tolist() == [5] and optimizer.table_steps["rw_first"] == 5
    optimizer.reset_state_dict()
    assert live.tolist() == [0]
    with pytest.raises(RuntimeError, match="whole number"):
        optimizer.load_state_dict({"sparse_row_wise_adagrad_rw_first_step": torch.tensor([2.5])})
    with pytest.raises(RuntimeError, match="'rw_first' is another table"):
        optimizer.load_state_dict({"rw_first": second})
    with pytest.raises(RuntimeError, match="already updates"):
        optimizer.add_params({"rw_first": first})


def test_bad_arguments_are_value_errors():
    with pytest.raises(ValueError, match="no table"):
        SparseRowWiseAdagrad({})
    with pytest.raises(ValueError, match="lr"):
        SparseRowWiseAdagrad({"rw_bad": _table("rw_bad")}, lr=float("nan"))


def test_row_wise_sum_grows_the_state_by_the_mean_squared_gradient():
    table = _table("rw_sum", dim=2)
    optimizer = SparseRowWiseAdagradSum({"rw_sum": table}, lr=1.0, initial_accumulator_value=1)
    table.insert(torch.tensor([4]), torch.zeros(1, 2))
    row = torch.tensor([_row(table, 4)])
    table.accept_grad(row, torch.tensor([[1.0, 2.0]]))
    table._hashtable_impl.accept_grad_sq(row, torch.tensor([[3.0, 5.0]]))
    optimizer.step()
    state = 1.0 + (3.0 + 5.0) / 2
    value = table.slot_group().slot_by_name("sparse_row_wise_adagrad_sum_state_sum").value()
    assert value[row].item() == pytest.approx(state)
    expected = [-1.0 / math.sqrt(state), -2.0 / math.sqrt(state)]
    assert table(torch.tensor([4])).tolist() == [pytest.approx(expected, rel=1e-6)]
    table.accept_grad(row, torch.ones(1, 2))
    with pytest.raises(RuntimeError, match=r"requires grad_sq.*'rw_sum'"):
        optimizer.step()


def test_adagrad_sum_uses_given_squares_and_falls_back_to_the_gradient_square():
    table = _table("sum_given", dim=1)
    optimizer = SparseAdagradSum({"sum_given": table._hashtable_impl}, lr=1.0)
    table.insert(torch.tensor([1, 2]), torch.zeros(2, 1))
    rows = torch.tensor([_row(table, 1), _row(table, 2)])
    table.accept_grad(rows, torch.tensor([[2.0], [2.0]]))
    table._hashtable_impl.accept_grad_sq(rows[:1], torch.tensor([[9.0]]))  # id 2: none given
    optimizer.step()
    state = table.slot_group().slot_by_name("sparse_adagrad_state_sum").value()[rows]
    assert state.view(-1).tolist() == pytest.approx([9.0, 4.0])
    assert table(torch.tensor([1, 2])).view(-1).tolist() == pytest.approx([-2.0 / 3.0, -1.0])


def test_update_info_records_every_nth_update_with_the_state_before_it():
    table = _table("info_table", dim=1)
    optimizer = SparseAdagrad({"info_table": table}, lr=1.0, save_update_info_interval=2)
    for gradient in (1.0, 3.0, 5.0):
        (table(torch.tensor([9])) * gradient).sum().backward()
        optimizer.step()
        optimizer.zero_grad()
    info = optimizer.get_step_update_info()  # the 2nd update; the 3rd is not recorded
    assert info["info_table_last_saved_step"].item() == 2
    assert info["info_table_updated_grad"].tolist() == [[3.0]]
    assert info["info_table_updated_state_sum"].tolist() == [[1.0]]
    assert info["info_table_updated_params_before"].tolist() == [[-1.0]]
    after = -1.0 - 3.0 / math.sqrt(10.0)
    assert info["info_table_updated_params_after"].item() == pytest.approx(after)
    assert info["info_table_updated_ids"].tolist() == [9]


def test_checkpoint_reader_gives_recis_step_entry(tmp_path):
    from recis.framework.checkpoint_manager import Saver
    from recis.serialize.checkpoint_reader import CheckpointReader

    model = torch.nn.Module()
    model.table = _table("reader_table")
    optimizer = SparseAdagrad({"reader_table": model.table})
    for _ in range(3):
        model.table(torch.tensor([1])).sum().backward()
        optimizer.step()
    path = Saver(model, optimizer, output_dir=str(tmp_path)).save("ckpt_3")
    reader = CheckpointReader(path)
    assert "sparse_adagrad_step" in reader.tensor_names()
    assert reader.read_tensor("sparse_adagrad_step").tolist() == [3]

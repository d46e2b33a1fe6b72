"""RecIS's entries of ``SparseOptimizer.state_dict()`` (``sparse_adamw_tf_step``...), kept per table
where RecIS's would collide, and loading a state that holds only them."""

from __future__ import annotations

import pytest
import torch

from recis.nn import HashTable
from recis.optim import SparseAdagrad, SparseAdamW, SparseAdamWTF, SparseSGD


def _step(tables: dict[str, HashTable], optimizer, names) -> None:
    loss = sum(tables[name](torch.tensor([1, 2])).sum() for name in names)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()


def test_one_table_gives_recis_plain_entries_with_its_values():
    tables = {"item": HashTable([-1, 2], name="item")}
    optimizer = SparseAdamWTF(tables, beta1=0.5, beta2=0.25)
    for _ in range(3):
        _step(tables, optimizer, ["item"])
    state = optimizer.state_dict()
    assert state["sparse_adamw_tf_step"].dtype == torch.int64
    assert state["sparse_adamw_tf_step"].tolist() == [3]
    assert state["sparse_adamw_tf_beta1"].item() == pytest.approx(0.125)
    assert state["sparse_adamw_tf_beta2"].item() == pytest.approx(0.25**3)
    assert not any("@" in key for key in state)  # nothing qualified with a single table
    assert state["tables"]["steps"] == {"item": 3}  # our own entries stay


def test_several_tables_get_their_own_entries_where_recis_would_collide():
    tables = {"user": HashTable([-1, 2], name="user"), "item": HashTable([-1, 2], name="item")}
    optimizer = SparseAdamW(tables, beta1=0.5)
    _step(tables, optimizer, ["user", "item"])
    _step(tables, optimizer, ["item"])  # only item updates: the tables' steps now differ
    state = optimizer.state_dict()
    assert state["user@sparse_adamw_step"].tolist() == [1]
    assert state["item@sparse_adamw_step"].tolist() == [2]
    assert state["user@sparse_adamw_beta1"].item() == pytest.approx(0.5)
    assert state["item@sparse_adamw_beta1"].item() == pytest.approx(0.25)
    assert state["sparse_adamw_step"].tolist() == [2]  # plain: the table with most updates


def test_a_recis_only_state_sets_each_tables_step():
    tables = {"user": HashTable([-1, 2], name="user"), "item": HashTable([-1, 2], name="item")}
    optimizer = SparseAdamWTF(tables, lr=0.1)
    recis_state = {
        "sparse_adamw_tf_step": torch.tensor([7]),
        "sparse_adamw_tf_beta1": torch.tensor(0.9**7),
        "sparse_adamw_tf_beta2": torch.tensor(0.999**7),
        "item@sparse_adamw_tf_step": torch.tensor([4]),
    }
    optimizer.load_state_dict(recis_state)
    assert optimizer.table_steps == {"user": 7, "item": 4}
    assert optimizer.param_groups[0]["lr"] == 0.1


def test_recis_state_round_trips_the_update_after_it():
    """A fresh optimizer loaded from the RecIS entries (and the rows) updates like the original:
    the bias correction uses the restored step."""
    ids = torch.tensor([1, 2])
    original = {"t": HashTable([-1, 2], name="t")}
    optimizer = SparseAdamWTF(original, lr=0.1)
    for _ in range(2):
        _step(original, optimizer, ["t"])
    recis_state = {k: v for k, v in optimizer.state_dict().items() if k.startswith("sparse_")}

    copy = {"t": HashTable([-1, 2], name="t")}
    restored = SparseAdamWTF(copy, lr=0.1)  # adds the slots, then the rows come in
    copy["t"].table.load_state_dict(original["t"].table.state_dict())
    restored.load_state_dict(recis_state)
    for tables, opt in ((original, optimizer), (copy, restored)):
        _step(tables, opt, ["t"])
    torch.testing.assert_close(copy["t"](ids), original["t"](ids))


def test_a_state_without_either_kind_of_entry_is_an_error_naming_the_key():
    optimizer = SparseAdamWTF({"t": HashTable([-1, 2], name="t")})
    with pytest.raises(KeyError, match="sparse_adamw_tf_step"):
        optimizer.load_state_dict({"param_groups": [{"lr": 1.0}]})


def test_optimizers_without_recis_entries_keep_their_state_as_before():
    optimizer = SparseSGD({"t": HashTable([-1, 2], name="t")})
    assert set(optimizer.state_dict()) == {"param_groups", "rule", "tables"}


def test_adagrad_gives_recis_step_entry_and_its_table():
    table = HashTable([-1, 2], name="t")
    optimizer = SparseAdagrad({"t": table})
    _step({"t": table}, optimizer, ["t"])
    state = optimizer.state_dict()
    assert set(state) == {"param_groups", "rule", "tables", "t", "sparse_adagrad_step"}
    assert state["t"] is table and state["sparse_adagrad_step"].tolist() == [1]

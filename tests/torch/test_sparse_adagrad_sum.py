"""SparseAdagradSum: Adagrad's trajectory on one process, RecIS's refusals elsewhere."""

from __future__ import annotations

import pytest
import torch

from recis.backends.torch.hashtable import HashTable
from recis.backends.torch.optim import sparse_adagrad_sum
from recis.optim import SparseAdagrad
from recis.optim.sparse_adagrad_sum import SparseAdagradSum


def _train(optimizer_class, name):
    table = HashTable([-1, 3], name=name)
    optimizer = optimizer_class(
        {name: table}, lr=0.3, lr_decay=0.01, initial_accumulator_value=0.1, eps=1e-6
    )
    torch.manual_seed(0)
    for _ in range(4):
        ids = torch.tensor([1, 5, 5, 9])
        (table(ids) * torch.randn(4, 3)).sum().backward()
        optimizer.step()
        optimizer.zero_grad()
    return table(torch.tensor([1, 5, 9])).detach()


def test_one_process_follows_adagrad_exactly():
    assert torch.equal(_train(SparseAdagradSum, "sum_a"), _train(SparseAdagrad, "plain_a"))


def test_refuses_weight_decay_update_info_and_several_ranks(monkeypatch):
    table = {"sum_b": HashTable([-1, 2], name="sum_b")}
    with pytest.raises(ValueError, match="does not support weight_decay"):
        SparseAdagradSum(table, weight_decay=1e-4)
    with pytest.raises(ValueError, match="save_update_info_interval"):
        SparseAdagradSum(table, save_update_info_interval=1)
    monkeypatch.setattr(sparse_adagrad_sum, "world_size", lambda: 2)
    with pytest.raises(NotImplementedError, match="with 2 ranks"):
        SparseAdagradSum(table)

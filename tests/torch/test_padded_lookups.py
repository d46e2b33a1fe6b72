"""The torch layers with padded lookups, as they run for sync-free GPU tables, here forced on the
CPU: training gives exactly what exact lookups give, also with gradients averaged per id."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recis.backends.torch.embedding import DynamicEmbedding
from recis.backends.torch.initializers import NormalInitializer
from recis.core.table import EmbeddingTable
from recis.nn import EmbeddingEngine, EmbeddingOption, HashTable, filter_out_sparse_param
from recis.optim import SparseAdamW
from recis.ragged import RaggedTensor


def option(name: str, grad_reduce_by: str, **kwargs) -> EmbeddingOption:
    return EmbeddingOption(
        embedding_dim=4, shared_name=name, initializer=NormalInitializer(std=0.1),
        grad_reduce_by=grad_reduce_by, **kwargs,
    )  # fmt: skip


def options(grad_reduce_by: str) -> dict[str, EmbeddingOption]:
    return {
        "user": option("user", grad_reduce_by),
        "item": option("item", grad_reduce_by, combiner="mean"),
        "cat": option("cat", grad_reduce_by),
    }


def batches(steps: int = 4) -> list[dict]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(steps):
        offsets = np.concatenate([[0], np.cumsum(rng.integers(0, 4, 16))])
        out.append({
            "user": torch.from_numpy(rng.integers(0, 20, (16, 1))),
            "item": torch.from_numpy(rng.integers(0, 30, (16, 3))),
            "cat": RaggedTensor(torch.from_numpy(rng.integers(0, 30, offsets[-1])),
                                [torch.from_numpy(offsets)]),
        })  # fmt: skip
    return out


def train(padded: bool, grad_reduce_by: str, monkeypatch) -> tuple[list, dict]:
    """Losses and table states of an engine, a hash table and a dynamic embedding trained on
    the same batches, with lookups padded as on a sync-free GPU table or exact."""
    with monkeypatch.context() as patch:
        patch.setattr(EmbeddingTable, "sync_free", property(lambda self: padded))
        engine = EmbeddingEngine(options(grad_reduce_by))
        table = HashTable([-1, 4], name="hash", initializer=NormalInitializer(std=0.1),
                          grad_reduce_by=grad_reduce_by)  # fmt: skip
        dynamic = DynamicEmbedding(option("dyn", grad_reduce_by, combiner="mean"))
        modules = torch.nn.ModuleList([engine, table, dynamic])
        assert all(t.sync_free == padded for t in filter_out_sparse_param(modules).values())
        optimizer = SparseAdamW(filter_out_sparse_param(modules), lr=0.05)
        losses = []
        for batch in batches():
            out = engine(batch)
            parts = [out[f] for f in ("user", "item", "cat")]
            parts += [table(batch["item"]), dynamic(batch["item"])]
            loss = sum(((p - 0.3) ** 2).sum() for p in parts)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            losses.append(loss.item())
        states = {n: t.table.state_dict() for n, t in filter_out_sparse_param(modules).items()}
    return losses, states


@pytest.mark.filterwarnings("error::RuntimeWarning")  # e.g. dividing by the count 0 of padding
@pytest.mark.parametrize("grad_reduce_by", ["worker", "id"])
def test_padded_lookups_train_exactly_as_exact_ones(grad_reduce_by, monkeypatch):
    want_losses, want_tables = train(False, grad_reduce_by, monkeypatch)
    got_losses, got_tables = train(True, grad_reduce_by, monkeypatch)
    assert got_losses == want_losses
    assert sorted(got_tables) == sorted(want_tables)
    for name, state in want_tables.items():
        for field, value in state.items():
            np.testing.assert_array_equal(got_tables[name][field], value, err_msg=field)

"""RecIS's table slots by name, trainable grouping and ``filter_out_trainable_sparse_param``."""

import pytest
import torch

from recis.nn import EmbeddingEngine, EmbeddingOption
from recis.nn.modules.hashtable import (
    HashTable,
    filter_out_sparse_param,
    filter_out_trainable_sparse_param,
)
from recis.optim import SparseAdagrad, SparseAdamWTF, SparseRowWiseAdagrad


def test_adagrad_state_sum_is_read_by_row():
    table = HashTable([-1, 2], name="slot_adagrad")
    optimizer = SparseAdagrad(filter_out_sparse_param(table), lr=0.1, initial_accumulator_value=1)
    table(torch.tensor([5, 6])).mul(torch.tensor([[1.0, 2.0], [3.0, 0.0]])).sum().backward()
    optimizer.step()
    ids, rows, _ = table.snap_shot()
    state = table.slot_group().slot_by_name("sparse_adagrad_state_sum").value()
    by_id = dict(zip(ids.tolist(), state[rows].tolist(), strict=True))
    assert by_id == {5: [2.0, 5.0], 6: [10.0, 1.0]}
    embedding = table.slot_group().slot_by_name("embedding").value()
    torch.testing.assert_close(embedding[rows], table.snap_shot()[2])


def test_row_wise_state_is_one_column_and_adamw_tf_moments_are_named():
    rowwise = HashTable([-1, 2], name="slot_rowwise")
    SparseRowWiseAdagrad({"slot_rowwise": rowwise}, initial_accumulator_value=0.25)
    rowwise.insert(torch.tensor([1]), torch.zeros(1, 2))
    value = rowwise.slot_group().slot_by_name("sparse_row_wise_adagrad_state_sum").value()
    assert value.shape[1] == 1 and value[0].tolist() == [0.25]
    adam = HashTable([-1, 3], name="slot_adam")
    SparseAdamWTF({"slot_adam": adam})
    names = adam.slot_group().names()
    assert {"embedding", "sparse_adamw_tf_exp_avg", "sparse_adamw_tf_exp_avg_sq"} <= set(names)


def test_unknown_slot_names_the_table_and_its_slots():
    table = HashTable([-1, 2], name="slot_missing")
    SparseAdagrad({"slot_missing": table})
    with pytest.raises(RuntimeError, match=r"slot_missing.*sparse_adam_exp_avg.*state_sum"):
        table.slot_group().slot_by_name("sparse_adam_exp_avg")


def test_frozen_logical_tables_are_stored_apart_without_optimizer_state():
    engine = EmbeddingEngine(
        {
            "a_frozen": EmbeddingOption(embedding_dim=4, shared_name="a", trainable=False),
            "a_trained": EmbeddingOption(embedding_dim=4, shared_name="a"),
            "b": EmbeddingOption(embedding_dim=4, shared_name="b"),
            "c": EmbeddingOption(embedding_dim=4, shared_name="c", trainable=False),
        }
    )
    tables = engine._fea_to_ht
    assert tables["a_frozen"] == tables["a_trained"] == tables["b"] != tables["c"]
    trained = filter_out_trainable_sparse_param(engine)
    assert [t.children_names for t in trained.values()] == [["a", "b"]]
    frozen = engine._ht[tables["c"]]
    assert frozen._hashtable is frozen and not frozen.requires_optimizer_state()
    SparseAdagrad(filter_out_sparse_param(engine))
    assert list(frozen.table.store.fields) == ["embedding"]
    out = engine(
        {
            "a_frozen": torch.tensor([[1]]),
            "a_trained": torch.tensor([[1]]),
            "b": torch.tensor([[2]]),
            "c": torch.tensor([[3]]),
        }
    )
    assert not out["c"].requires_grad and out["a_trained"].requires_grad

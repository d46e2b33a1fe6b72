"""Saver and Loader take RecIS's arguments: shard, parallel, path, tables, tensors, filter."""

import pytest
import torch

from recis.nn import HashTable
from recis.serialize import CheckpointReader, Loader, Saver


def filled_table(name="emb"):
    table = HashTable([-1, 2], name=name)
    table.insert(torch.tensor([3, 8]), torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    return table


def test_recis_positional_arguments_and_implementation_objects(tmp_path):
    table = filled_table()
    tensors = {"w": torch.arange(4.0)}
    Saver(0, 1, 2, str(tmp_path / "ckpt"), {"emb": table._hashtable_impl}, tensors).save()
    fresh, w = HashTable([-1, 2], name="emb"), {"w": torch.zeros(4)}
    Loader(checkpoint_path=str(tmp_path / "ckpt"), hashtables={"emb": fresh}, tensors=w).load()
    assert dict(zip(*[t.tolist() for t in fresh.ids_embeddings()], strict=True)) == {
        3: [1.0, 2.0],
        8: [3.0, 4.0],
    }
    assert w["w"].tolist() == [0.0, 1.0, 2.0, 3.0]


def test_filter_func_keeps_what_it_returns(tmp_path):
    tensors = {"keep": torch.ones(1), "drop": torch.zeros(1)}
    path = Saver(
        path=tmp_path / "ckpt",
        hashtables={"emb": filled_table()},
        tensors=tensors,
        filter_func=lambda names: [n for n in names if n != "drop"],
    ).save()
    names = CheckpointReader(path).tensor_names()
    assert "keep" in names and "drop" not in names and "emb/embedding" in names


def test_a_shard_that_is_not_this_process_and_a_path_in_first_place_are_refused(tmp_path):
    with pytest.raises(ValueError, match="shard 1 of 2 does not match this process, rank 0 of 1"):
        Saver(1, 2, path=tmp_path / "ckpt").save()
    with pytest.raises(TypeError, match=r"shard_index.*pass path="):
        Saver(str(tmp_path / "ckpt"))

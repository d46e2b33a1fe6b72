"""The RecIS-style low-level API: Saver, Loader and CheckpointReader on torch tensors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from checkpoint_helpers import assert_same_state, by_id
from safetensors.torch import load_file
from torch_helpers import Run

from recis.checkpoint import CheckpointError
from recis.serialize import CheckpointReader, Loader, Saver


@pytest.fixture
def trained(tmp_path):
    run = Run(tmp_path / "run", save_steps=0)
    run.train_until(5)
    return run


def dense_tensors() -> dict[str, torch.Tensor]:
    return {
        "w": torch.arange(12, dtype=torch.float32).reshape(3, 4),
        "half": torch.linspace(-1, 1, 5, dtype=torch.bfloat16),
        "steps": torch.tensor(7),
    }


def test_saver_writes_tables_and_tensors_the_loader_restores(tmp_path, trained):
    saver = Saver(
        path=tmp_path / "ckpt",
        hashtables=trained.tables(),
        tensors=dense_tensors(),
        parallel=4,
        max_file_bytes=512,
    )
    path = saver.save(metadata={"note": "manual"})
    index = json.loads((path / "index.json").read_text())
    assert index["metadata"] == {"note": "manual"} and index["dense"] == ["w", "half", "steps"]
    assert len([f for f in index["files"] if f.startswith("sparse-")]) > 3
    fresh = Run(tmp_path / "other", save_steps=0)
    tensors = {name: torch.zeros_like(t) for name, t in dense_tensors().items()}
    Loader(path, fresh.tables(), tensors).load()
    for name, table in trained.tables().items():
        assert_same_state(fresh.tables()[name].table, table.table)
    for name, tensor in dense_tensors().items():
        assert torch.equal(tensors[name], tensor), name


def test_every_file_opens_with_safetensors_for_torch(tmp_path, trained):
    path = Saver(
        path=tmp_path / "ckpt",
        hashtables=trained.tables(),
        tensors=dense_tensors(),
        max_file_bytes=400,
    ).save()
    found = {}
    for file in sorted(path.glob("*.safetensors")):
        found |= {f"{file.name}:{k}": v for k, v in load_file(file).items()}
    embeddings = [v for k, v in found.items() if k.endswith(":user/embedding")]
    assert embeddings and all(v.dtype == torch.bfloat16 for v in embeddings)
    reader = CheckpointReader(path)
    user = reader.read_tensor("user/embedding")
    assert len(embeddings) > 1 and torch.equal(user, torch.cat(embeddings))
    assert reader.tensor_shape("user/embedding") == list(user.shape)
    assert torch.equal(reader.read_tensor("half"), dense_tensors()["half"])
    assert reader.tensor_dtype("steps") == torch.int64 and reader.tensor_shape("steps") == []
    with pytest.raises(KeyError, match="no tensor 'missing'"):
        reader.read_tensor("missing")


def test_filter_func_can_skip_slots_and_rename_tables(tmp_path, trained):
    path = Saver(path=tmp_path / "ckpt", hashtables=trained.tables()).save()
    fresh = Run(tmp_path / "other", save_steps=0)
    loader = Loader(path, fresh.tables())
    info = loader.default_load_info()
    assert info["query"] == {"query": ["embedding", "exp_avg", "exp_avg_sq"]}
    assert info["user"] == {"user": ["embedding", "last_used", "exp_avg", "exp_avg_sq"]}

    def embeddings_only_and_query_from_item(info):
        plan = {name: {name: ["embedding"]} for name in info if name != "query"}
        return plan | {"query": {"item": ["embedding"]}}

    Loader(path, fresh.tables(), filter_func=embeddings_only_and_query_from_item).load()
    merged, query = trained.tables()["user+1"].table, fresh.tables()["query"].table
    ids = merged.state_dict()["id"][merged.state_dict()["tag"] == 1]
    assert sorted(by_id(query)["query"]) == sorted(ids.tolist())
    np.testing.assert_array_equal(query.gather(query.find(ids)), merged.gather(merged.find(ids, 1)))
    assert not query.gather(query.find(ids), "exp_avg").any()


def test_loader_strictness(tmp_path, trained):
    path = Saver(path=tmp_path / "ckpt", hashtables={"query": trained.tables()["query"]}).save()
    fresh = Run(tmp_path / "other", save_steps=0)
    with pytest.raises(CheckpointError, match="has no table 'user'"):
        Loader(path, fresh.tables()).load()
    with pytest.raises(CheckpointError, match="no dense tensor 'w'"):
        Loader(path, tensors={"w": torch.zeros(1)}).load()
    Loader(path, fresh.tables(), tensors={"w": torch.zeros(1)}, strict=False).load()
    assert_same_state(fresh.tables()["query"].table, trained.tables()["query"].table)
    assert len(fresh.tables()["user+1"].table) == 0
    with pytest.raises(ValueError, match="exactly one source"):
        Loader(path, fresh.tables(), filter_func=lambda info: {"query": {}}, strict=False).load()

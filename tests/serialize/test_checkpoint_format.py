"""Checkpoint files of engine tables: exact round trips, the format, and loud errors."""

from __future__ import annotations

import hashlib
import json
import re

import ml_dtypes
import numpy as np
import pytest
from checkpoint_helpers import assert_same_state, make_tables, make_updater, train_step
from safetensors import safe_open
from safetensors.numpy import load_file

from recis.checkpoint import (
    INDEX,
    Checkpoint,
    CheckpointError,
    CheckpointWriter,
    load_tables,
    plan_load,
    save_tables,
)
from recis.core.policies import CapacityEviction
from recis.core.table import EmbeddingTable


def trained(steps: int = 6):
    tables = make_tables()
    updater = make_updater(tables)
    for step in range(steps):
        train_step(tables, updater, step)
    return tables, updater


def restored(path, updater_state):
    tables = make_tables()
    updater = make_updater(tables)
    checkpoint = Checkpoint(path)
    assert load_tables(checkpoint, tables, plan_load(checkpoint, tables)) == {
        "user+1": ["user+1"],
        "query": ["query"],
    }
    updater.load_state_dict(updater_state)
    return tables, updater


@pytest.mark.parametrize("max_file_bytes", [1 << 30, 200])
def test_restored_tables_are_identical_and_continue_identically(tmp_path, max_file_bytes):
    tables, updater = trained()
    assert tables["user+1"].admission.pending() > 0 and tables["query"].ids.rows.num_free > 0
    path = save_tables(tmp_path / "ckpt", tables, max_file_bytes=max_file_bytes, parallel=3)
    again, again_updater = restored(path, updater.state_dict())
    for name in tables:
        assert_same_state(again[name], tables[name])
    for step in range(6, 10):
        train_step(tables, updater, step)
        train_step(again, again_updater, step)
    for name in tables:
        assert_same_state(again[name], tables[name])


def test_files_are_safetensors_keyed_by_logical_table_and_id(tmp_path):
    tables, _ = trained()
    path = save_tables(tmp_path / "ckpt", tables, max_file_bytes=300)
    index = json.loads((path / INDEX).read_text())
    files = sorted(p.name for p in path.glob("*.safetensors"))
    assert files == sorted(index["files"]) and len(files) > 2
    loaded = {name: load_file(path / name) for name in files}
    for name in files:
        with safe_open(path / name, framework="np") as f:
            assert f.metadata() == {"format": "recis.checkpoint", "version": "1"}
    merged = tables["user+1"].state_dict()
    for tag, child in enumerate(["user", "item"]):
        mine = merged["tag"] == tag
        for field in ("id", "row", "embedding", "exp_avg", "exp_avg_sq", "last_used"):
            parts = index["tensors"][f"{child}/{field}"]["files"]
            joined = np.concatenate([loaded[f][f"{child}/{field}"] for f in parts])
            np.testing.assert_array_equal(joined, merged[field][mine])
    assert loaded[index["tensors"]["user/embedding"]["files"][0]]["user/embedding"].dtype == (
        ml_dtypes.bfloat16
    )
    for name, info in index["files"].items():
        assert info["sha256"] == hashlib.sha256((path / name).read_bytes()).hexdigest()


def test_index_describes_physical_and_logical_tables(tmp_path):
    tables, _ = trained()
    index = Checkpoint(save_tables(tmp_path / "ckpt", tables, metadata={"step": 6})).index
    assert index["metadata"] == {"step": 6}
    merged = index["tables"]["user+1"]
    assert merged["children"] == ["user", "item"] and merged["dtype"] == "bfloat16"
    assert merged["fields"]["embedding"] == {"dtype": "bfloat16", "shape": [4], "kind": "embedding"}
    assert merged["fields"]["exp_avg"]["kind"] == "optimizer"
    assert merged["fields"]["last_used"] == {"dtype": "int64", "shape": [], "kind": "policy"}
    assert merged["state"] == ["eviction.step", "rows.free", "rows.high_water"]
    assert merged["lookup_stats"] == tables["user+1"].stats_total.as_dict()
    item = index["logical"]["item"]
    assert item == {
        "table": "user+1",
        "tag": 1,
        "ids": int((tables["user+1"].ids.export().tags == 1).sum()),
        "state": ["admission.counts", "admission.keys"],
    }
    assert index["tensors"]["item/embedding"]["shape"] == [item["ids"], 4]


def test_checkpoint_reads_tensors_by_name(tmp_path):
    tables, _ = trained()
    dense = {"w": np.arange(6, dtype=np.float32).reshape(2, 3)}
    checkpoint = Checkpoint(save_tables(tmp_path / "ckpt", tables, dense, max_file_bytes=100))
    assert "user/embedding" in checkpoint.tensor_names() and "w" in checkpoint.tensor_names()
    assert "query/@rows.free" in checkpoint.tensor_names()
    np.testing.assert_array_equal(checkpoint.read_tensor("w"), dense["w"])
    state = tables["query"].state_dict()
    np.testing.assert_array_equal(checkpoint.read_tensor("query/id"), state["id"])
    np.testing.assert_array_equal(checkpoint.read_tensor("query/@rows.free"), state["rows.free"])
    with pytest.raises(KeyError, match="no tensor 'nope'"):
        checkpoint.read_tensor("nope")


def test_empty_tables_round_trip(tmp_path):
    tables = make_tables()
    make_updater(tables)
    path = save_tables(tmp_path / "ckpt", tables)
    again, _ = restored(path, make_updater(make_tables()).state_dict())
    for name in tables:
        assert_same_state(again[name], tables[name])


def _corrupt_one(path, how: str) -> str:
    name = next(p.name for p in sorted(path.glob("sparse-*.safetensors")))
    data = bytearray((path / name).read_bytes())
    if how == "truncate":
        data = data[: len(data) // 2]
    else:
        data[len(data) - 5] ^= 0x10
    (path / name).write_bytes(bytes(data))
    return name


@pytest.mark.parametrize("how", ["truncate", "flip"])
def test_damaged_file_raises_an_error_naming_it(tmp_path, how):
    tables, _ = trained()
    path = save_tables(tmp_path / "ckpt", tables)
    name = _corrupt_one(path, how)
    checkpoint = Checkpoint(path)
    fresh = make_tables()
    make_updater(fresh)
    message = "truncated" if how == "truncate" else "sha256 mismatch"
    with pytest.raises(CheckpointError, match=f"{re.escape(name)}.*{message}"):
        load_tables(checkpoint, fresh, plan_load(checkpoint, fresh))
    with pytest.raises(CheckpointError, match=name):
        checkpoint.check_files()


def test_damaged_or_missing_index_raises(tmp_path):
    path = save_tables(tmp_path / "ckpt", make_tables())
    text = (path / INDEX).read_text()
    (path / INDEX).write_text(text.replace('"ids": 0', '"ids": 1', 1))
    with pytest.raises(CheckpointError, match=f"{INDEX}.*sha256 does not match"):
        Checkpoint(path)
    (path / INDEX).write_text(text[:-10])
    with pytest.raises(CheckpointError, match=f"{INDEX}.* is corrupt"):
        Checkpoint(path)
    (path / INDEX).unlink()
    with pytest.raises(CheckpointError, match=f"{INDEX}. is missing: .* unfinished or damaged"):
        Checkpoint(path)


def test_missing_data_file_is_named(tmp_path):
    path = save_tables(tmp_path / "ckpt", make_tables())
    (path / "sparse-00000.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"sparse-00000\.safetensors.* is missing"):
        Checkpoint(path).check_files()


def test_an_exception_while_writing_publishes_nothing(tmp_path):
    with (
        pytest.raises(RuntimeError, match="disk on fire"),
        CheckpointWriter(tmp_path / "ckpt") as writer,
    ):
        writer.write_tables(make_tables())
        raise RuntimeError("disk on fire")
    assert list(tmp_path.iterdir()) == []


def test_commit_replaces_an_existing_checkpoint(tmp_path):
    save_tables(tmp_path / "ckpt", make_tables(), metadata={"step": 1})
    tables, _ = trained()
    save_tables(tmp_path / "ckpt", tables, metadata={"step": 2})
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]
    checkpoint = Checkpoint(tmp_path / "ckpt")
    assert checkpoint.metadata == {"step": 2}
    assert checkpoint.logical["query"]["ids"] == len(tables["query"])


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(ValueError, match="parallel must be >= 1"):
        CheckpointWriter(tmp_path / "a", parallel=0)
    with CheckpointWriter(tmp_path / "b") as writer:
        with pytest.raises(ValueError, match="two tables hold a logical table named 'user'"):
            writer.write_tables(make_tables({"user": ["user"], "both": ["user", "x"]}))
        with pytest.raises(ValueError, match=r"'index\.json' is reserved"):
            writer.write_file("index.json", lambda f: None)


def test_a_restored_table_with_many_evictions_continues_identically(tmp_path):
    def make():
        return {"t": EmbeddingTable("t", 2, capacity=16, eviction=CapacityEviction(300, "lfu"))}

    def lookups(table, seed, steps):
        rng = np.random.default_rng(seed)
        for _ in range(steps):
            table.lookup(np.unique(rng.integers(0, 5000, 200)))

    tables = make()
    lookups(tables["t"], 0, 20)
    checkpoint = Checkpoint(save_tables(tmp_path / "ckpt", tables))
    again = make()
    load_tables(checkpoint, again, plan_load(checkpoint, again))
    lookups(tables["t"], 1, 10)
    lookups(again["t"], 1, 10)
    assert_same_state(again["t"], tables["t"])

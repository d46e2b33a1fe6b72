"""CheckpointManager: exact resume, rotation, atomicity under crashes, model bank."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch
from checkpoint_helpers import assert_same_state, by_id
from torch_helpers import Run, next_random_numbers, scramble_random_generators

from recis.backends.torch.serialize.tensors import TENSORS
from recis.checkpoint import Checkpoint, CheckpointError, read_checkpoint_list
from recis.checkpoint.state_tree import read_state
from recis.serialize import CheckpointReader


def assert_same_run(a: Run, b: Run) -> None:
    assert a.manager.global_step == b.manager.global_step
    for key, value in a.model.state_dict().items():
        assert torch.equal(value, b.model.state_dict()[key]), key
    for name, table in a.tables().items():
        assert_same_state(table.table, b.tables()[name].table)
    assert a.sparse.state_dict() == b.sparse.state_dict()
    assert a.schedule.state_dict() == b.schedule.state_dict()
    dense_a, dense_b = a.dense.state_dict()["state"], b.dense.state_dict()["state"]
    for index, slots in dense_a.items():
        for name, value in slots.items():
            assert torch.equal(value, dense_b[index][name]), (index, name)
    assert a.data.state_dict() == b.data.state_dict()


def test_a_resumed_run_ends_bit_identical_to_an_uninterrupted_one(tmp_path):
    whole = Run(tmp_path)
    whole.train_until(10)
    assert read_checkpoint_list(tmp_path) == ["ckpt_4", "ckpt_8"]
    scramble_random_generators()
    resumed = Run(tmp_path)
    assert resumed.manager.restore() and resumed.manager.global_step == 8
    assert resumed.data.position == 8
    resumed.train_until(10)
    assert_same_run(resumed, whole)
    whole.manager.save()
    expected = next_random_numbers()  # drawn from the generators' saved states
    scramble_random_generators()
    assert Run(tmp_path).manager.restore()
    assert next_random_numbers() == expected


def test_rotation_keeps_the_newest_and_lists_them_oldest_first(tmp_path):
    run = Run(tmp_path, save_steps=2, max_to_keep=3)
    run.train_until(9)
    assert (tmp_path / "checkpoint").read_text() == "ckpt_4\nckpt_6\nckpt_8\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint",
        "ckpt_4",
        "ckpt_6",
        "ckpt_8",
    ]
    assert not Run(tmp_path / "empty").manager.restore()
    earlier = Run(tmp_path)
    assert earlier.manager.restore(step=6) and earlier.manager.global_step == 6
    with pytest.raises(CheckpointError, match="ckpt_2"):
        earlier.manager.restore(step=2)


def test_saving_the_same_step_again_replaces_it(tmp_path):
    run = Run(tmp_path, save_steps=0)
    run.train_until(3)
    run.manager.save()
    run.train_until(5)
    run.manager._global_step = 3
    run.manager.save()
    assert read_checkpoint_list(tmp_path) == ["ckpt_3"]
    again = Run(tmp_path)
    again.manager.restore()
    assert again.data.position == 5


def test_the_dense_file_holds_no_hash_table_state(tmp_path):
    run = Run(tmp_path)
    run.train_until(4)
    state = read_state(Checkpoint(tmp_path / "ckpt_4"), "model", TENSORS)
    assert sorted(state) == ["fc.bias", "fc.weight"]
    reader = CheckpointReader(tmp_path)
    assert {"fc.weight", "user/embedding", "item/exp_avg", "query/id"} <= set(reader.tensor_names())
    assert torch.equal(reader.read_tensor("fc.weight"), run.model.fc.weight.detach())
    assert reader.tensor_dtype("user/embedding") == torch.bfloat16
    assert reader.tensor_shape("fc.weight") == [1, 12]


def test_an_error_while_saving_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    run = Run(tmp_path)
    run.train_until(4)

    def broken():
        raise OSError("no space left")

    monkeypatch.setattr(run.data, "state_dict", broken)
    with pytest.raises(OSError, match="no space left"):
        run.train_until(8)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint", "ckpt_4"]
    assert read_checkpoint_list(tmp_path) == ["ckpt_4"]
    again = Run(tmp_path)
    assert again.manager.restore() and again.manager.global_step == 4


CHILD = """
import sys, time
import torch
import importlib
from recis.backends.torch.checkpoint import CheckpointManager
from recis.nn import HashTable

model = torch.nn.ModuleDict({"emb": HashTable([-1, 4], name="t"), "fc": torch.nn.Linear(4, 1)})
model["emb"](torch.arange(300))
manager = CheckpointManager(sys.argv[1], model, save_steps=1, max_file_bytes=2000)
manager.step()
def hanging(*args, **kwargs):
    print("hanging", flush=True)
    time.sleep(120)
setattr(importlib.import_module(sys.argv[2]), sys.argv[3], hanging)
manager.step()
"""


@pytest.mark.parametrize(
    ("module", "where"),
    [
        ("recis.checkpoint.writer", "seal"),
        ("recis.checkpoint.directory", "write_text_atomic"),
    ],
)
def test_a_kill_during_a_save_leaves_the_previous_checkpoint_loadable(tmp_path, module, where):
    command = [sys.executable, "-c", textwrap.dedent(CHILD), str(tmp_path), module, where]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as child:
        try:
            assert child.stdout.readline().startswith("hanging")  # (threads may print twice)
        finally:
            os.kill(child.pid, signal.SIGKILL)
    assert read_checkpoint_list(tmp_path) == ["ckpt_1"]
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
    assert (where == "seal") == (leftovers != [])
    run = Run(tmp_path, save_steps=1)
    with pytest.raises(CheckpointError, match="has no table 'user'"):
        run.manager.restore()  # the saved model had one table, 't'
    from recis.backends.torch.checkpoint import CheckpointManager
    from recis.nn import HashTable

    model = torch.nn.ModuleDict({"emb": HashTable([-1, 4], name="t"), "fc": torch.nn.Linear(4, 1)})
    manager = CheckpointManager(tmp_path, model, save_steps=1)
    assert manager.restore() and manager.global_step == 1 and len(model["emb"].table) == 300
    manager.step()
    assert read_checkpoint_list(tmp_path) == ["ckpt_1", "ckpt_2"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_corrupt_checkpoint_is_refused_before_anything_is_loaded(tmp_path):
    Run(tmp_path).train_until(4)
    path = tmp_path / "ckpt_4" / "extra.safetensors"
    path.write_bytes(path.read_bytes()[:-3])
    run = Run(tmp_path)
    before = {k: v.clone() for k, v in run.model.state_dict().items()}
    with pytest.raises(CheckpointError, match=r"extra\.safetensors.*truncated"):
        run.manager.restore(4)  # (without a step, it would fall back to ckpt_2)
    assert all(torch.equal(v, before[k]) for k, v in run.model.state_dict().items())
    assert len(run.tables()["query"].table) == 0


def test_model_bank_loads_the_parts_asked_for(tmp_path):
    source = Run(tmp_path / "a")
    source.train_until(6)
    source.manager.save()
    target = Run(tmp_path / "b")
    bias = target.model.fc.bias.detach().clone()
    target.manager.load_model_bank(
        [{"path": tmp_path / "a", "load": ["sparse", "dense"], "exclude": ["item", "fc.bias"]}]
    )
    assert target.manager.global_step == 0 and target.data.position == 0
    assert torch.equal(target.model.fc.weight, source.model.fc.weight)
    assert torch.equal(target.model.fc.bias, bias)
    loaded, saved = by_id(target.tables()["user+1"].table), by_id(source.tables()["user+1"].table)
    assert loaded["item"] == {}
    assert {i: v[0] for i, v in loaded["user"].items()} == {
        i: v[0] for i, v in saved["user"].items()
    }
    assert not target.tables()["query"].table.state_dict()["exp_avg"].any()
    assert target.sparse.state_dict()["tables"]["steps"] == {"user+1": 0, "query": 0}

    target.manager.load_model_bank([{"path": tmp_path / "a", "load": ["*"]}])
    assert_same_run(target, source)


def test_model_bank_strictness(tmp_path):
    Run(tmp_path / "a").train_until(4)
    split = Run(tmp_path / "b", merged=False)
    split.manager.register_for_checkpointing("counter", torch.optim.SGD([torch.zeros(1)]))
    entry = {"path": tmp_path / "a", "load": ["extra"]}
    with pytest.raises(CheckpointError, match=r"extra\.json' holds no state for 'counter'"):
        split.manager.load_model_bank([entry])
    split.manager.load_model_bank([entry | {"strict": False}])
    assert split.manager.global_step == 4
    with pytest.raises(ValueError, match="unknown parts"):
        split.manager.load_model_bank([{"path": tmp_path / "a", "load": ["weights"]}])
    with pytest.raises(ValueError, match="needs 'path'"):
        split.manager.load_model_bank([{"load": ["*"]}])


def test_restore_into_differently_merged_tables(tmp_path):
    source = Run(tmp_path)
    source.train_until(8)
    split = Run(tmp_path, merged=False)
    assert split.manager.restore()
    merged = by_id(source.tables()["user+1"].table)
    assert by_id(split.tables()["user"].table)["user"] == merged["user"]
    assert by_id(split.tables()["item"].table)["item"] == merged["item"]
    assert_same_state(split.tables()["query"].table, source.tables()["query"].table)
    steps = source.sparse.table_steps
    assert split.sparse.table_steps == {
        "user": steps["user+1"],
        "item": steps["user+1"],
        "query": 8,
    }
    assert torch.equal(split.model.fc.weight, source.model.fc.weight)

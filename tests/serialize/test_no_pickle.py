"""Loading a checkpoint never unpickles: state is JSON and safetensors; the pickled files of
older versions load only with allow_pickle=True."""

from __future__ import annotations

import json
import os
import pickle

import pytest
import torch
from test_checkpoint_manager import assert_same_run
from torch_helpers import Run, scramble_random_generators

from recis.backends.torch.serialize.tensors import TENSORS
from recis.checkpoint import Checkpoint, CheckpointError
from recis.checkpoint.files import index_digest, seal
from recis.checkpoint.state_tree import read_state


class Exploit:
    """Unpickling it creates a file: proof that code ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def to_old_format(path, payload=None) -> None:
    """Rewrite a checkpoint as older versions wrote it: ``model.pt`` and ``extra.pt`` (pickles),
    with ``payload`` pickled into ``extra.pt`` instead of the state when given."""
    checkpoint = Checkpoint(path)
    index = checkpoint.index
    for name in ("model", "extra"):
        state = read_state(checkpoint, name, TENSORS)
        with open(path / f"{name}.pt", "wb") as out:
            if name == "extra" and payload is not None:
                pickle.dump(payload, out)
            else:
                torch.save(state, out)
        for suffix in (".json", ".safetensors"):
            (path / f"{name}{suffix}").unlink()
            del index["files"][f"{name}{suffix}"]
        index["files"][f"{name}.pt"] = seal(path / f"{name}.pt")
    index["sha256"] = index_digest(index)
    (path / "index.json").write_text(json.dumps(index))


def test_a_checkpoint_holds_no_pickle(tmp_path):
    Run(tmp_path).train_until(4)
    files = Checkpoint(tmp_path / "ckpt_4").index["files"]
    assert not [f for f in files if f.endswith(".pt")]
    assert {"model.json", "model.safetensors", "extra.json", "extra.safetensors"} <= set(files)


def test_a_crafted_pickle_is_refused_without_running(tmp_path):
    Run(tmp_path / "run").train_until(4)
    marker = tmp_path / "code-ran"
    to_old_format(tmp_path / "run" / "ckpt_4", Exploit(str(marker)))
    run = Run(tmp_path / "run")
    with pytest.raises(CheckpointError, match=r"(model|extra)\.pt' is a pickle.*allow_pickle=True"):
        run.manager.restore(4)
    assert not marker.exists()
    bank = [{"path": str(tmp_path / "run" / "ckpt_4")}]
    with pytest.raises(CheckpointError, match=r"(model|extra)\.pt' is a pickle"):
        Run(tmp_path / "other").manager.load_model_bank(bank)
    assert not marker.exists()


def test_old_checkpoints_load_with_allow_pickle(tmp_path):
    whole = Run(tmp_path)
    whole.train_until(6)
    to_old_format(tmp_path / "ckpt_4")
    scramble_random_generators()
    resumed = Run(tmp_path, allow_pickle=True)
    assert resumed.manager.restore(4)
    resumed.train_until(6)
    assert_same_run(resumed, whole)

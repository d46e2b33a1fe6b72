"""Checkpoint paths stay inside their directories; rotation deletes only the run's own
checkpoints; a missing index falls back to the previous intact checkpoint."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from recis.checkpoint import Checkpoint, CheckpointDirectory, CheckpointError
from recis.checkpoint.files import index_digest
from recis.core.table import EmbeddingTable


def save(run: CheckpointDirectory, step: int):
    table = EmbeddingTable("t", dim=2)
    table.find_or_insert(np.arange(step + 1))
    return run.save(step, lambda writer: writer.write_tables({"t": table}))


def victim(tmp_path):
    """A directory outside the run that must survive."""
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "data.txt").write_text("keep me")
    return outside


@pytest.mark.parametrize("entry", ["../precious", "ABSOLUTE", "link"])
def test_list_entries_outside_the_run_are_neither_resumed_nor_deleted(tmp_path, entry):
    outside = victim(tmp_path)
    shutil.copytree(save(CheckpointDirectory(tmp_path / "other"), 1), outside / "ckpt")
    root = tmp_path / "run"
    run = CheckpointDirectory(root, max_to_keep=1)
    save(run, 1)
    if entry == "ABSOLUTE":
        entry = str(outside)
    if entry == "link":
        (root / "link").symlink_to(outside)
    (root / "checkpoint").write_text(f"{entry}\nckpt_1\n")
    assert run.latest() == root / "ckpt_1"
    (root / "checkpoint").write_text(f"ckpt_1\n{entry}\n")
    with pytest.warns(UserWarning, match="outside|link"):
        assert run.latest() == root / "ckpt_1"  # the bad newest entry is passed over
    save(run, 2)  # rotation drops both older entries
    assert (outside / "data.txt").read_text() == "keep me"
    assert run.names() == ["ckpt_2"]
    assert not (root / "ckpt_1").exists()


def test_rotation_leaves_directories_that_are_not_checkpoints(tmp_path):
    root = tmp_path / "run"
    run = CheckpointDirectory(root, max_to_keep=1)
    save(run, 1)
    (root / "ckpt_0").mkdir()
    (root / "ckpt_0" / "notes.txt").write_text("mine")
    (root / "checkpoint").write_text("ckpt_0\nckpt_1\n")
    save(run, 2)
    assert (root / "ckpt_0" / "notes.txt").read_text() == "mine"
    assert not (root / "ckpt_1").exists()


def test_index_file_names_must_stay_inside_the_checkpoint(tmp_path):
    outside = victim(tmp_path)
    path = save(CheckpointDirectory(tmp_path / "run"), 1)
    index = json.loads((path / "index.json").read_text())
    (name,) = [n for n in index["files"] if n.startswith("sparse")]
    shutil.copy(path / name, outside / "stolen.safetensors")
    moved = "../../precious/stolen.safetensors"
    index["files"][moved] = index["files"].pop(name)
    for tensor in index["tensors"].values():
        tensor["files"] = [moved if f == name else f for f in tensor["files"]]
    index["sha256"] = index_digest(index)
    (path / "index.json").write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match="not a plain file name"):
        Checkpoint(path)


def test_a_kill_during_rotation_is_cleaned_up_by_the_next_save(tmp_path, monkeypatch):
    root = tmp_path / "run"
    run = CheckpointDirectory(root, max_to_keep=1)
    save(run, 1)
    real_rmtree = shutil.rmtree

    def killed(path, *args, **kwargs):
        if "ckpt_1" not in str(path):
            return real_rmtree(path, *args, **kwargs)
        next(p for p in sorted(Path(path).iterdir()) if p.is_file()).unlink()
        raise KeyboardInterrupt  # the process dies half-way through deleting

    monkeypatch.setattr(shutil, "rmtree", killed)
    with pytest.raises(KeyboardInterrupt):
        save(run, 2)
    monkeypatch.setattr(shutil, "rmtree", real_rmtree)
    assert run.names() == ["ckpt_2"]
    assert not (root / "ckpt_1").exists()  # never left half-deleted under its own name
    save(run, 3)
    assert sorted(p.name for p in root.iterdir()) == ["checkpoint", "ckpt_3"]


def test_a_missing_index_falls_back_to_the_previous_intact_checkpoint(tmp_path):
    root = tmp_path / "run"
    run = CheckpointDirectory(root, max_to_keep=3)
    save(run, 1)
    save(run, 2)
    (root / "ckpt_2" / "index.json").unlink()
    with pytest.warns(
        UserWarning,
        match=r"falling back to checkpoint .ckpt_1.*passing over .ckpt_2.*index.json.* is missing",
    ):
        assert run.latest() == root / "ckpt_1"
    with pytest.raises(CheckpointError, match=r"index.json.*is missing"):
        Checkpoint(root / "ckpt_2")

"""The example launchers train, evaluate and write their outputs."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("example", ["deepfm", "dlrm"])
def test_example_trains_evaluates_and_saves(example, tmp_path):
    command = [sys.executable, "-m", f"examples.{example}.train", "--output_dir", str(tmp_path)]
    command += ["--rows", "6000", "--batch_size", "512", "--steps", "12", "--save_steps", "6"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "evaluation: loss" in done.stdout and "AUC" in done.stdout
    assert (tmp_path / "training.png").stat().st_size > 10_000
    assert (tmp_path / "checkpoint").read_text().split() == ["ckpt_6", "ckpt_12"]
    assert any((tmp_path / "tensorboard").iterdir())


def test_engine_demo_learns():
    command = [sys.executable, "examples/engine_demo.py", "--samples", "40000", "--epochs", "2"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    last_auc = float(done.stdout.split("test AUC")[-1].split()[0])
    assert last_auc > 0.7

"""The example launchers train, evaluate and write their outputs, on either backend."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def _imported_modules(importtime_log: str) -> set[str]:
    """Module names of ``python -X importtime`` lines (``import time: self | total | name``)."""
    return {line.split("|")[-1].strip() for line in importtime_log.splitlines() if "|" in line}


@pytest.mark.parametrize("backend", ["torch", "jax"])
@pytest.mark.parametrize("example", ["deepfm", "dlrm"])
def test_example_trains_evaluates_and_saves(example, backend, tmp_path):
    pytest.importorskip(backend, reason=f"the {backend} backend is not installed")
    command = [sys.executable, "-X", "importtime", "-m", f"examples.{example}.train"]
    command += ["--backend", backend, "--output_dir", str(tmp_path)]
    command += ["--rows", "6000", "--batch_size", "512", "--steps", "12", "--save_steps", "6"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "evaluation: loss" in done.stdout and "AUC" in done.stdout
    assert (tmp_path / "training.png").stat().st_size > 10_000
    assert (tmp_path / "checkpoint").read_text().split() == ["ckpt_6", "ckpt_12"]
    assert any((tmp_path / "tensorboard").iterdir())
    metadata = json.loads((tmp_path / "ckpt_12" / "index.json").read_text())["metadata"]
    assert metadata["step"] == 12 and metadata.get("backend", "torch") == backend
    assert ("torch" in _imported_modules(done.stderr)) == (backend == "torch")


def test_engine_demo_learns():
    command = [sys.executable, "examples/engine_demo.py", "--samples", "40000", "--epochs", "2"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    last_auc = float(done.stdout.split("test AUC")[-1].split()[0])
    assert last_auc > 0.7


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_example_trains_on_two_ranks_under_torchrun(backend, tmp_path):
    pytest.importorskip(backend, reason=f"the {backend} backend is not installed")
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    command += ["--standalone", "-m", "examples.deepfm.train", "--backend", backend]
    command += ["--output_dir", str(tmp_path), "--rows", "8000", "--batch_size", "512"]
    command += ["--steps", "6", "--save_steps", "3", "--hidden", "32"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("evaluation: loss") == 1  # rank 0 reports
    assert (tmp_path / "checkpoint").read_text().split() == ["ckpt_3", "ckpt_6"]
    index = json.loads((tmp_path / "ckpt_6" / "index.json").read_text())
    assert index["metadata"]["step"] == 6


def test_cuda_device_without_a_gpu_stops_with_a_clear_message(tmp_path):
    torch = pytest.importorskip("torch", reason="the torch backend is not installed")
    if torch.cuda.is_available():
        pytest.skip("this checks the message given where torch sees no CUDA device")
    command = [sys.executable, "-m", "examples.deepfm.train", "--device", "cuda"]
    command += ["--output_dir", str(tmp_path), "--rows", "100", "--steps", "1"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "--device=cuda needs a CUDA device, and torch sees none" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "data").exists()


@pytest.mark.gpu
@pytest.mark.parametrize("example", ["deepfm", "dlrm"])
def test_example_trains_on_the_gpu(example, tmp_path):
    torch = pytest.importorskip("torch", reason="the torch backend is not installed")
    pytest.importorskip("cupy", reason="GPU tables need CuPy (recis[cuda])")
    if not torch.cuda.is_available():
        pytest.skip("--device=cuda needs a CUDA device, and torch sees none")
    command = [sys.executable, "-m", f"examples.{example}.train", "--device", "cuda"]
    command += ["--output_dir", str(tmp_path), "--rows", "6000", "--batch_size", "512"]
    command += ["--steps", "6", "--save_steps", "6"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    loss = float(done.stdout.split("evaluation: loss")[-1].split(",")[0])
    assert 0 < loss < 1  # binary cross-entropy of a model that trained, not NaN
    assert (tmp_path / "checkpoint").read_text().split() == ["ckpt_6"]

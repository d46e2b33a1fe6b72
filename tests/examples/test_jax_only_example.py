"""The DeepFM example with ``--backend jax`` on two processes started by RecIS's JAX launcher,
in an environment where ``import torch`` fails: the processes join through ``jax.distributed``,
train, evaluate and write one checkpoint list."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest
from no_torch_env import without_torch

pytest.importorskip("jax", reason="the JAX backend is not installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_deepfm_trains_on_two_jax_processes_without_torch(tmp_path):
    command = [sys.executable, "-m", "recis.backends.jax.launch", "--nproc_per_node", "2"]
    command += ["--master_port", str(free_port()), "-m", "examples.deepfm.train"]
    command += ["--backend", "jax", "--output_dir", str(tmp_path), "--rows", "8000"]
    command += ["--batch_size", "512", "--steps", "6", "--save_steps", "3", "--hidden", "32"]
    env = without_torch()
    env.update(OMP_NUM_THREADS="1", RECIS_ENGINE_THREADS="1")
    done = subprocess.run(command, capture_output=True, text=True, timeout=400, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("evaluation: loss") == 1  # rank 0 reports
    assert "torch is blocked" not in done.stderr
    assert (tmp_path / "checkpoint").read_text().split() == ["ckpt_3", "ckpt_6"]
    index = json.loads((tmp_path / "ckpt_6" / "index.json").read_text())
    assert index["metadata"]["step"] == 6 and index["metadata"]["backend"] == "jax"
    assert index["world_size"] == 2  # tables saved by both processes


def test_deepfm_trains_on_two_local_devices_and_resumes_on_one(tmp_path):
    """``--devices 2``: batches split over two host devices, tables sharded over them; the
    checkpoint it writes resumes a run on one device."""
    command = [sys.executable, "-m", "examples.deepfm.train", "--backend", "jax"]
    command += ["--output_dir", str(tmp_path), "--rows", "6000", "--batch_size", "512"]
    command += ["--save_steps", "3", "--hidden", "32"]
    env = without_torch()
    env.update(OMP_NUM_THREADS="1", RECIS_ENGINE_THREADS="1")
    for devices, steps in (("2", "6"), ("1", "9")):
        run = [*command, "--devices", devices, "--steps", steps]
        done = subprocess.run(run, capture_output=True, text=True, timeout=400, env=env)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "evaluation: loss" in done.stdout
    assert "resuming from step 6" in done.stdout + done.stderr
    assert (tmp_path / "checkpoint").read_text().split() == ["ckpt_3", "ckpt_6", "ckpt_9"]
    index = json.loads((tmp_path / "ckpt_9" / "index.json").read_text())
    assert index["metadata"]["step"] == 9

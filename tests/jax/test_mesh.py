"""Data parallelism over the devices of one process: four host devices (in a subprocess, so the
XLA flag stays there, and without torch) train like one device on the same batches."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("jax", reason="the JAX backend needs jax")
pytest.importorskip("flax", reason="the sharded-training model lives beside Flax helpers")

from no_torch_env import without_torch

WORKER = Path(__file__).resolve().parent / "mesh_worker.py"
SHARDED_TRAINING = Path(__file__).resolve().parents[1] / "distributed"


@pytest.fixture(scope="module")
def runs():
    env = without_torch()
    env["PYTHONPATH"] = os.pathsep.join([env["PYTHONPATH"], str(SHARDED_TRAINING)])
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
    env["RECIS_ENGINE_THREADS"] = "1"
    done = subprocess.run(
        [sys.executable, str(WORKER)], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_batch_is_split_over_four_devices_and_the_parameters_replicated(runs):
    assert runs["local_devices"] == 4
    assert runs["single"]["devices"] == [1]
    assert runs["mesh"]["devices"] == [4] and runs["mesh"]["replicated"]
    assert runs["mesh"]["compilations"] == runs["single"]["compilations"] == 1


def test_four_devices_train_like_one(runs):
    single, mesh = runs["single"], runs["mesh"]
    np.testing.assert_allclose(mesh["losses"], single["losses"], rtol=1e-5)
    for name, value in single["dense"].items():
        np.testing.assert_allclose(mesh["dense"][name], value, rtol=1e-5, atol=1e-6)
    assert mesh["tables"].keys() == single["tables"].keys()
    for name, table in single["tables"].items():
        assert mesh["tables"][name]["id"] == table["id"]
        np.testing.assert_allclose(mesh["tables"][name]["embedding"], table["embedding"],
                                   rtol=1e-5, atol=1e-6)  # fmt: skip


def test_the_worker_runs_in_a_process_of_its_own():
    assert "--xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", "")

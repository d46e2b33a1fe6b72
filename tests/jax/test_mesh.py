"""Data parallelism over the devices of one process: four host devices (in a subprocess, so the
XLA flag stays there, and without torch) train like one device on the same batches, with the
tables in one engine table each or sharded row-wise over the four devices; checkpoints of the
sharded tables load on one device and the other way round."""

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
    for name in ("mesh", "sharded"):
        assert runs[name]["devices"] == [4] and runs[name]["replicated"]
        assert runs[name]["compilations"] == runs["single"]["compilations"] == 1


def assert_same_rows(actual: dict, expected: dict, exact: bool = False) -> None:
    """The tables hold the same ids with the same fields (to rounding unless ``exact``)."""
    assert actual.keys() == expected.keys()
    for name, table in expected.items():
        keys = list(zip(table["id"], table["tag"], strict=True))
        pairs = zip(actual[name]["id"], actual[name]["tag"], strict=True)
        at = {key: i for i, key in enumerate(pairs)}
        assert sorted(at) == sorted(keys), name
        order = [at[key] for key in keys]
        for field in ("embedding", "exp_avg", "exp_avg_sq"):
            got = np.asarray(actual[name][field])[order]
            if exact:
                np.testing.assert_array_equal(got, table[field], err_msg=f"{name} {field}")
            else:
                np.testing.assert_allclose(got, table[field], rtol=1e-5, atol=1e-6,
                                           err_msg=f"{name} {field}")  # fmt: skip


@pytest.mark.parametrize("run", ["mesh", "sharded"])
def test_four_devices_train_like_one(runs, run):
    single, mesh = runs["single"], runs[run]
    np.testing.assert_allclose(mesh["losses"], single["losses"], rtol=1e-5)
    for name, value in single["dense"].items():
        np.testing.assert_allclose(mesh["dense"][name], value, rtol=1e-5, atol=1e-6)
    assert_same_rows(mesh["tables"], single["tables"])


def test_each_devices_shard_holds_the_rows_the_owner_rule_gives_it(runs):
    assert runs["mesh"]["shards"] == {} and runs["single"]["shards"] == {}
    shards = runs["sharded"]["shards"]
    assert sorted(shards) == sorted(runs["single"]["tables"])
    for name, placement in shards.items():
        assert placement["placed"], name
        assert len(placement["sizes"]) == 4 and min(placement["sizes"]) > 0, placement
        assert sum(placement["sizes"]) == len(runs["single"]["tables"][name]["id"])


def test_a_checkpoint_of_four_device_shards_loads_on_one_device_and_back(runs):
    assert_same_rows(runs["sharded_on_one"]["tables"], runs["sharded"]["tables"], exact=True)
    assert runs["sharded_on_one"]["shards"] == {}
    assert_same_rows(runs["single_on_four"]["tables"], runs["single"]["tables"], exact=True)
    assert runs["single_on_four"]["shards"] == runs["sharded"]["shards"]


def test_the_worker_runs_in_a_process_of_its_own():
    assert "--xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", "")

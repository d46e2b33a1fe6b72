"""A JAX run killed with SIGKILL and resumed from its last checkpoint ends bit-identical to an
uninterrupted run of the same length."""

from __future__ import annotations

import os
import pathlib
import random
import signal
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("jax", reason="the JAX backend needs jax")
pytest.importorskip("flax.nnx", reason="the trainer trains Flax NNX models")

from jax_trainer_helpers import make_data

from recis.checkpoint import read_checkpoint_list

DRIVER = pathlib.Path(__file__).with_name("jax_kill_driver.py")
STEPS = 40  # crosses the end of the first epoch (32 batches)
KILLED, FINISHED = -signal.SIGKILL, 0


def _run(data, output, *extra, ends=(FINISHED,)):
    """Run the driver in a new process; its exit must be one of ``ends``."""
    command = [sys.executable, str(DRIVER), "--data", data, "--output", str(output)]
    command += ["--steps", str(STEPS), *extra]
    path = os.pathsep.join(filter(None, [str(DRIVER.parent), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode in ends, done.stderr[-2000:]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("kill")
    data = make_data(str(root / "data"))
    _run(data, root / "straight")
    return data, root, dict(np.load(root / "straight" / "final.npz"))


def _assert_identical(expected, path):
    actual = dict(np.load(path))
    assert expected.keys() == actual.keys()
    for key in expected:
        np.testing.assert_array_equal(actual[key], expected[key], err_msg=key)


def test_killed_at_a_random_step_then_resumed(runs):
    data, root, expected = runs
    kill_at = random.Random(os.getpid()).randint(4, STEPS - 2)
    output = root / f"killed-at-{kill_at}"
    _run(data, output, "--kill_at_step", str(kill_at), ends=(KILLED,))
    assert not (output / "final.npz").exists()
    assert read_checkpoint_list(output)[-1] == f"ckpt_{kill_at - kill_at % 3}"
    _run(data, output)  # resumes from the last checkpoint before the kill
    _assert_identical(expected, output / "final.npz")


def test_killed_while_writing_a_checkpoint_then_resumed(runs):
    """The half-written checkpoint is never listed; the run resumes from the one before."""
    data, root, expected = runs
    output = root / "killed-while-saving"
    _run(data, output, "--kill_while_saving", "33", ends=(KILLED,))
    assert read_checkpoint_list(output)[-1] == "ckpt_30"
    assert any(p.name.startswith(".tmp-ckpt_33") for p in output.iterdir())
    _run(data, output)
    assert not any(p.name.startswith(".tmp-") for p in output.iterdir())
    _assert_identical(expected, output / "final.npz")

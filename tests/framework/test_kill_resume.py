"""A run killed with SIGKILL and resumed from its last checkpoint ends bit-identical to an
uninterrupted run of the same length."""

from __future__ import annotations

import os
import pathlib
import random
import signal
import subprocess
import sys

import pytest
import torch
from trainer_helpers import make_data

DRIVER = pathlib.Path(__file__).with_name("kill_driver.py")
STEPS = 24


KILLED, FINISHED = -signal.SIGKILL, 0


def _run(data, output, *extra, ends=(FINISHED,)):
    """Run the driver in a new process; its exit must be one of ``ends``."""
    command = [sys.executable, str(DRIVER), "--data", data, "--output", str(output)]
    command += ["--steps", str(STEPS), *extra]
    env = {**os.environ, "PYTHONPATH": str(DRIVER.parent)}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode in ends, done.stderr[-2000:]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("kill")
    data = make_data(str(root / "data"))
    _run(data, root / "straight")
    return data, root, torch.load(root / "straight" / "final.pt")


def _assert_identical(expected, path):
    actual = torch.load(path)
    assert expected.keys() == actual.keys()
    for key in expected:
        assert torch.equal(expected[key], actual[key]), key


def test_killed_at_a_random_step_then_resumed(runs):
    data, root, expected = runs
    kill_at = random.Random(os.getpid()).randint(4, STEPS - 2)
    output = root / f"killed-at-{kill_at}"
    _run(data, output, "--kill_at_step", str(kill_at), ends=(KILLED,))
    assert not (output / "final.pt").exists()
    _run(data, output)  # resumes from the last checkpoint before the kill
    _assert_identical(expected, output / "final.pt")


def test_killed_at_a_random_moment_then_resumed(runs):
    """The kill may land anywhere, a checkpoint save included; the last complete checkpoint
    is still loadable and the resumed run still ends identical."""
    data, root, expected = runs
    delay = random.Random(os.getpid() + 1).uniform(3.0, 8.0)
    output = root / "killed-by-timer"
    _run(data, output, "--kill_after_seconds", f"{delay:.2f}", ends=(KILLED, FINISHED))
    _run(data, output)
    _assert_identical(expected, output / "final.pt")

"""How the engine's kernel pool waits and how many threads the front ends give it."""

from __future__ import annotations

import os
import subprocess
import sys

import numba
import pytest

from recis.core.threads import framework_kernel_threads, kernel_threads

PROBE = (
    "import os, numba, recis.core.kernels; "
    "print(os.environ.get('OMP_WAIT_POLICY'), numba.get_num_threads(), numba.threading_layer())"
)


def probe(env: dict) -> tuple[list[str], str]:
    """(environment policy and thread count after importing the kernels, how long numba's
    OpenMP threads spin when idle, as its runtime prints it under ``OMP_DISPLAY_ENV``)."""
    environment = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    environment |= {"OMP_DISPLAY_ENV": "VERBOSE", **env}
    result = subprocess.run(
        [sys.executable, "-c", PROBE], env=environment, capture_output=True, text=True, check=True
    )
    policy, threads, layer = result.stdout.split()
    if layer != "omp":
        pytest.skip(f"numba's threading layer is {layer}, not OpenMP: there is no wait policy")
    lines = result.stderr.splitlines()
    spin = [line.split("=")[1].strip() for line in lines if "SPINCOUNT" in line]
    return [policy, threads], spin[0]


def test_the_kernel_pool_starts_passive_and_the_environment_is_left_as_it_was():
    (policy, threads), spin = probe({})
    assert spin == "'0'"  # the pool's idle threads sleep at once (the default spins 300000 times)
    assert policy == "None"  # the variable was set only while the pool started
    assert int(threads) == numba.config.NUMBA_NUM_THREADS


def test_a_users_wait_policy_is_kept():
    (policy, _), spin = probe({"OMP_WAIT_POLICY": "ACTIVE"})
    assert policy == "ACTIVE" and spin != "'0'"


def test_front_ends_use_every_core_unless_told_otherwise(monkeypatch):
    monkeypatch.delenv("RECIS_ENGINE_THREADS", raising=False)
    assert framework_kernel_threads() == numba.config.NUMBA_NUM_THREADS
    monkeypatch.setenv("RECIS_ENGINE_THREADS", "1")
    assert framework_kernel_threads() == 1
    with kernel_threads(framework_kernel_threads()):
        assert numba.get_num_threads() == 1

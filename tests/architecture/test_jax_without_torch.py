"""The JAX path needs no torch: no module of the JAX backend imports it, and every one of them
(with the JAX example's modules) imports in a process where ``import torch`` fails."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from import_graph import modules
from no_torch_env import without_torch

ROOT = Path(__file__).resolve().parents[2]
JAX_BACKEND = "recis.backends.jax"
EXAMPLE_MODULES = ["examples.launcher", "examples.deepfm.model_jax", "examples.dlrm.model_jax"]


def jax_backend_modules() -> list[str]:
    return [m.name for m in modules() if m.name.split(".")[:3] == JAX_BACKEND.split(".")]


def test_no_module_of_the_jax_backend_imports_torch():
    names = jax_backend_modules()
    assert len(names) > 15
    offenders = {
        m.name: sorted(n for n in m.imports if n.split(".")[0] == "torch")
        for m in modules()
        if m.name in names
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_jax_path_imports_where_torch_is_blocked():
    pytest.importorskip("jax", reason="the JAX backend needs jax")
    pytest.importorskip("flax", reason="the JAX backend's Flax layers need flax")
    names = jax_backend_modules() + EXAMPLE_MODULES
    script = (
        "import importlib, sys\n"
        f"for name in {names!r}: importlib.import_module(name)\n"
        "from recis.distributed.world import default_communicator\n"
        "assert default_communicator() is None\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=without_torch(), capture_output=True, text=True,
        cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"

"""The engine must not import torch or jax (DESIGN.md principle 1)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import recis.core


def test_importing_every_engine_module_loads_neither_torch_nor_jax():
    modules = [m.name for m in pkgutil.walk_packages(recis.core.__path__, "recis.core.")]
    assert "recis.core.id_map" in modules and len(modules) > 10
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(sorted(m for m in ('torch', 'jax', 'flax') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"

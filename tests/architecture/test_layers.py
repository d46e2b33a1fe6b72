"""The import rules of docs/architecture.md, checked on the source and at run time."""

from __future__ import annotations

import subprocess
import sys

import pytest
from import_graph import FRAMEWORKS, find_cycle, folder_graph, framework_imports, modules

NEUTRAL = {
    "recis.core": set(),
    "recis.utils": set(),
    "recis.tools": set(),
    "recis.distributed": {"recis.core"},
    "recis.io": {"recis.core"},
    "recis.checkpoint": {"recis.core", "recis.distributed"},
    "recis.embedding": {"recis.core", "recis.distributed"},
    "recis.framework": {"recis.core", "recis.checkpoint", "recis.distributed", "recis.utils"},
    "recis.hooks": {"recis.core", "recis.framework", "recis.utils"},
    "recis.monitor": {"recis.utils"},
    "recis.export": {"recis.core", "recis.checkpoint", "recis.distributed"},
    "recis.serving": {"recis.core", "recis.distributed", "recis.embedding", "recis.export"},
}
BACKENDS = ("recis.backends.torch", "recis.backends.jax")


def test_only_the_backends_import_a_framework():
    offenders = {
        m.name: sorted(framework_imports(m))
        for m in modules()
        if not m.name.startswith("recis.backends.") and framework_imports(m)
    }
    assert offenders == {}


@pytest.mark.parametrize("folder", sorted(NEUTRAL))
def test_each_neutral_layer_imports_only_the_layers_below_it(folder):
    graph = folder_graph()
    assert folder in graph, f"no modules found in {folder}"
    assert graph[folder] <= NEUTRAL[folder], f"{folder} imports {graph[folder] - NEUTRAL[folder]}"


def test_the_backends_never_import_each_other():
    for module in modules():
        for backend, other in (BACKENDS, BACKENDS[::-1]):
            if module.name.startswith(backend):
                crossing = sorted(n for n in module.imports if n.startswith(other))
                assert crossing == [], f"{module.name} imports {crossing}"


def test_the_folder_import_graph_has_no_cycle():
    graph = folder_graph()
    assert len(graph) >= len(NEUTRAL) + len(BACKENDS)
    assert find_cycle(graph) is None


def test_the_recis_paths_are_thin_reexports_of_the_torch_backend():
    reexports = {m.name for m in modules() if m.reexport}
    for path in ("recis.nn.modules.hashtable", "recis.optim", "recis.framework.trainer"):
        assert path in reexports


def test_importing_every_neutral_module_loads_no_framework():
    names = [m.name for m in modules() if m.folder in NEUTRAL and not m.reexport]
    assert len(names) > 60
    script = (
        "import importlib, sys\n"
        f"for name in {names!r}: importlib.import_module(name)\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {sorted(FRAMEWORKS)!r}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"

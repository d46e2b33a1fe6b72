"""Where torch is not installed, ``import torch`` must fail in the tests: with ``tests/`` on
``sys.path`` the folder ``tests/torch`` would otherwise be imported as an empty namespace package
``torch``. (Here rather than in ``tests/``, where ``--doctest-modules`` would collect it.)"""

from __future__ import annotations

import importlib.util
from pathlib import Path

TESTS = Path(__file__).resolve().parent / "tests"


def _torch_is_only_our_test_folder() -> bool:
    try:
        spec = importlib.util.find_spec("torch")
    except ImportError:
        return False
    return (
        spec is not None
        and spec.origin is None
        and all(Path(p).resolve().parent == TESTS for p in spec.submodule_search_locations or ())
    )


if _torch_is_only_our_test_folder():
    from no_torch.torch_blocker import install

    install()

# not test modules: the torch blocker (importing it would block torch in this process) and a
# script run with its own PYTHONPATH; and RecIS's paths that import as their backend module
# (recis.backends.torch.recis_path), which doctest collection would take for another file
collect_ignore = [
    "tests/no_torch",
    "tests/jax/mesh_worker.py",
    "recis/hooks/auto_profiler_hook.py",
    "recis/hooks/initial_profiler_hook.py",
    "recis/hooks/monitor_report_hook.py",
    "recis/hooks/profiler_hook.py",
    "recis/io/cuda_prefetch_dataset.py",
]

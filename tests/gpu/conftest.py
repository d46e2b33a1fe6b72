"""GPU tests: those marked ``gpu`` skip, with the reason, where CuPy or a CUDA device is missing.

With ``--cupy-standin`` they run on the host instead, ``import cupy`` giving the stand-in of
``tests/cupy_standin`` (``make test`` runs them so, in a process of their own). The ``cp``
fixture gives them the ``cupy`` module.
"""

from __future__ import annotations

import importlib
from functools import cache

import pytest

NO_CUDA = "needs CuPy and a CUDA device"


def pytest_addoption(parser):
    parser.addoption(
        "--cupy-standin",
        action="store_true",
        help="run the GPU tests on the host, with the CuPy stand-in of tests/cupy_standin",
    )


def pytest_configure(config):
    if config.getoption("--cupy-standin"):
        import cupy_standin

        cupy_standin.install()


@cache
def missing_cuda() -> str | None:
    """Why GPU tests cannot run here, or None when they can."""
    try:
        cupy = importlib.import_module("cupy")
    except ImportError:
        return f"{NO_CUDA} (CuPy is not installed; --cupy-standin runs them on the host)"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as error:  # CuPy raises its own runtime error without a driver
        return f"{NO_CUDA} ({type(error).__name__}: {error})"
    return None if count > 0 else f"{NO_CUDA} (no CUDA device found)"


def on_standin() -> bool:
    """Whether ``cupy`` is the host stand-in."""
    return getattr(importlib.import_module("cupy"), "STANDIN", False)


@pytest.fixture(autouse=True)
def _skip_gpu_tests_without_cuda(request):
    reason = missing_cuda()
    if reason and request.node.get_closest_marker("gpu") is not None:
        pytest.skip(reason)


@pytest.fixture
def cp():
    """The ``cupy`` module (GPU tests only)."""
    return importlib.import_module("cupy")

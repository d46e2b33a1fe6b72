"""GPU tests: those marked ``gpu`` skip, with the reason, where CuPy or a CUDA device is missing.

The ``cp`` fixture gives them the ``cupy`` module.
"""

from __future__ import annotations

import importlib
from functools import cache

import pytest

NO_CUDA = "needs CuPy and a CUDA device"


@cache
def missing_cuda() -> str | None:
    """Why GPU tests cannot run here, or None when they can."""
    try:
        cupy = importlib.import_module("cupy")
    except ImportError:
        return f"{NO_CUDA} (CuPy is not installed)"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as error:  # CuPy raises its own runtime error without a driver
        return f"{NO_CUDA} ({type(error).__name__}: {error})"
    return None if count > 0 else f"{NO_CUDA} (no CUDA device found)"


@pytest.fixture(autouse=True)
def _skip_gpu_tests_without_cuda(request):
    reason = missing_cuda()
    if reason and request.node.get_closest_marker("gpu") is not None:
        pytest.skip(reason)


@pytest.fixture
def cp():
    """The ``cupy`` module (GPU tests only)."""
    return importlib.import_module("cupy")

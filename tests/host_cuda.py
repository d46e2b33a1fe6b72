"""CUDA kernel sources built as plain C++ for the host, for tests on machines without a GPU.

Kernels written with the portable loop of ``cuda/feature_support.cuh`` compile with g++ as host
functions looping over their items (last to first), which lets the Python side of a GPU module
run them on NumPy arrays (``tests/`` is on the tests' import path: ``from host_cuda import
build_for_host``).
"""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path

import numpy as np
import pytest

CUDA_DIR = Path(__file__).resolve().parents[1] / "cuda"


class HostKernels:
    """The kernels of one source as host functions; :meth:`launch` checks every call against the
    kernel's C signature: argument count, ``n`` first, int64 scalars where the kernel takes
    ``long long`` and contiguous arrays where it takes pointers."""

    def __init__(self, library: ctypes.CDLL, signatures: dict[str, list[str]]) -> None:
        self.library = library
        self.signatures = signatures

    def launch(self, name: str, n: int, args: tuple) -> None:
        params = self.signatures[name]
        assert len(args) == len(params), f"{name}: {len(args)} arguments for {params}"
        assert params[0].split()[-1] == "n" and args[0] == n >= 0
        converted = []
        for param, arg in zip(params, args, strict=True):
            if "*" in param:
                assert isinstance(arg, np.ndarray), f"{name}: {param} given {type(arg)}"
                assert arg.flags.c_contiguous, f"{name}: {param} is not contiguous"
                converted.append(ctypes.c_void_p(arg.ctypes.data))
            else:
                assert param.rsplit(maxsplit=1)[0] in ("i64", "long long"), param
                assert type(arg) is np.int64, f"{name}: {param} given {type(arg).__name__}"
                converted.append(ctypes.c_longlong(int(arg)))
        if n:  # as recis.core.cuda.loader.launch, which launches nothing for no items
            getattr(self.library, name)(*converted)


@cache
def build_for_host(source: str) -> HostKernels:
    """The :class:`HostKernels` of ``cuda/<source>``, compiled once per process (the calling
    test is skipped where g++ is missing)."""
    compiler = shutil.which("g++")
    if compiler is None:
        pytest.skip("building CUDA sources for the host needs g++, which is not installed")
    path = CUDA_DIR / source
    library = Path(tempfile.mkdtemp(prefix="recis-host-cuda-")) / f"{path.stem}.so"
    flags = ["-std=c++17", "-x", "c++", f"-I{CUDA_DIR}"]
    subprocess.run([compiler, *flags, "-O1", "-shared", "-fPIC", path, "-o", library], check=True)
    expanded = subprocess.run(
        [compiler, *flags, "-E", "-P", path], check=True, capture_output=True, text=True
    ).stdout
    signatures = {
        name: [p.strip() for p in params.split(",")]
        for name, params in re.findall(r'extern "C" void (\w+)\(([^)]*)\)', expanded)
    }
    return HostKernels(ctypes.CDLL(str(library)), signatures)

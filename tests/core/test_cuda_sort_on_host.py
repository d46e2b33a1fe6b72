"""The GPU radix sort, run on the CPU: ``cuda/sort.cu`` compiled as plain C++ (each kernel a loop
over its items, last to first) behind the Python side of :mod:`recis.core.cuda.sort`, against
NumPy's stable argsort. Every launch is checked against the kernel's C signature. The GPU itself
runs it in ``tests/gpu``."""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from recis.core.cuda import sort

CUDA_DIR = Path(__file__).resolve().parents[2] / "cuda"


@pytest.fixture(scope="module")
def host_kernels(tmp_path_factory):
    """The kernels of sort.cu as host functions, and their parameters by name."""
    compiler = shutil.which("g++")
    if compiler is None:
        pytest.skip("compiling cuda/sort.cu for the host needs g++, which is not installed")
    source, library = CUDA_DIR / "sort.cu", tmp_path_factory.mktemp("cuda") / "sort.so"
    flags = ["-std=c++17", "-x", "c++", f"-I{CUDA_DIR}"]
    subprocess.run([compiler, *flags, "-O1", "-shared", "-fPIC", source, "-o", library], check=True)
    expanded = subprocess.run(
        [compiler, *flags, "-E", "-P", source], check=True, capture_output=True, text=True
    ).stdout
    signatures = {
        name: [p.strip() for p in params.split(",")]
        for name, params in re.findall(r'extern "C" void (\w+)\(([^)]*)\)', expanded)
    }
    return ctypes.CDLL(str(library)), signatures


@pytest.fixture
def on_host(host_kernels, monkeypatch):
    """Route recis.core.cuda.sort to the host kernels, NumPy standing in for CuPy."""
    library, signatures = host_kernels
    device = SimpleNamespace(
        ascontiguousarray=np.ascontiguousarray,
        arange=np.arange,
        empty=np.empty,
        cumsum=np.cumsum,
    )

    def launch(name, n, args):
        params = signatures[name]
        assert len(args) == len(params), f"{name}: {len(args)} arguments for {params}"
        assert params[0].split()[-1] == "n" and args[0] == n > 0
        converted = []
        for param, arg in zip(params, args, strict=True):
            if "*" in param:
                assert isinstance(arg, np.ndarray) and arg.flags.c_contiguous, name
                converted.append(ctypes.c_void_p(arg.ctypes.data))
            else:
                assert type(arg) is np.int64, f"{name}: {param} given {type(arg).__name__}"
                converted.append(ctypes.c_longlong(int(arg)))
        getattr(library, name)(*converted)

    monkeypatch.setattr(sort, "_xp", lambda: device)
    monkeypatch.setattr(sort, "_kernel", lambda name: name)
    monkeypatch.setattr(sort, "_launch", launch)


@pytest.mark.parametrize("seed", range(8))
def test_radix_argsort_is_numpys_stable_argsort(on_host, seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 3000))
    bound = int([2, 40, 256, 257, 70_000, 2**33][seed % 6])
    keys = rng.integers(0, bound, n)
    if seed % 2:  # long runs of a few hot keys
        keys[rng.random(n) < 0.7] = keys[0] if n else 0
    got = sort.stable_argsort(keys, bound)
    np.testing.assert_array_equal(got, np.argsort(keys, kind="stable"))


def test_keys_are_not_changed_and_one_key_is_its_own_order(on_host):
    keys = np.array([3, 1, 2, 1, 0])
    before = keys.copy()
    assert sort.stable_argsort(keys, 4).tolist() == [4, 1, 3, 2, 0]
    np.testing.assert_array_equal(keys, before)
    assert sort.stable_argsort(np.array([9]), 10).tolist() == [0]

"""CUDA kernel sources built as plain C++ for the host, for tests on machines without a GPU.

``build_for_host("id_map.cu")`` compiles ``cuda/id_map.cu`` with g++, the CUDA builtins its
kernels use coming from ``tests/cuda_host_shim.h``, and adds one launcher per kernel that runs a
grid's blocks and threads one after another (last to first). :meth:`HostKernels.run` launches a
kernel with CuPy's argument conventions, checked against the kernel's C signature; the CuPy
stand-in of ``tests/cupy_standin`` launches its ``RawKernel`` s this way. Builds are cached on disk
by the digest of their inputs. (``tests/`` is on the tests' import path: ``from host_cuda import
build_for_host``.)
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

CUDA_DIR = Path(__file__).resolve().parents[1] / "cuda"
SHIM = Path(__file__).resolve().with_name("cuda_host_shim.h")
FLAGS = ("-std=c++17", "-x", "c++", "-ffp-contract=off", "-include", str(SHIM), f"-I{CUDA_DIR}")
BLOCK, MAX_BLOCKS = 256, 64  # the grid of launch(): at most MAX_BLOCKS blocks of BLOCK threads

# C scalar types of kernel parameters: (ctypes type, NumPy dtype)
SCALARS = {
    "long long": (ctypes.c_longlong, np.dtype(np.int64)),
    "i64": (ctypes.c_longlong, np.dtype(np.int64)),
    "unsigned long long": (ctypes.c_ulonglong, np.dtype(np.uint64)),
    "u64": (ctypes.c_ulonglong, np.dtype(np.uint64)),
    "int": (ctypes.c_int, np.dtype(np.int32)),
    "unsigned int": (ctypes.c_uint, np.dtype(np.uint32)),
    "float": (ctypes.c_float, np.dtype(np.float32)),
    "double": (ctypes.c_double, np.dtype(np.float64)),
}


class LaunchError(TypeError):
    """A kernel launched with arguments its signature does not take."""


@dataclass(frozen=True)
class Param:
    """One kernel parameter: its C type, its name, and whether it is a pointer."""

    ctype: str
    name: str

    @property
    def pointer(self) -> bool:
        return "*" in self.ctype

    @property
    def scalar(self) -> tuple:
        """(ctypes type, NumPy dtype) of a scalar parameter."""
        words = [w for w in self.ctype.split() if w not in ("const", "volatile")]
        return SCALARS[" ".join(words)]


class HostKernels:
    """The kernels of one source as host functions, each checked against its C signature."""

    def __init__(self, source: str, library: ctypes.CDLL, signatures: dict[str, list[Param]]):
        self.source = source
        self.library = library
        self.signatures = signatures

    def run(self, name: str, grid: int, block: int, args: tuple, device_pointer) -> None:
        """Launch ``name`` over ``grid`` blocks of ``block`` threads with CuPy's conventions:
        Python ints are int64, floats float64, NumPy scalars their dtype, None a null pointer;
        ``device_pointer(arg)`` gives a device array's address (or None for anything else). A
        scalar whose size or kind differs from its parameter's is an error, as is an array for a
        scalar or a host value for a pointer."""
        params = self.signatures.get(name)
        if params is None:
            raise LaunchError(f"{self.source}: no kernel named {name!r}")
        if len(args) != len(params):
            raise LaunchError(f"{name}: {len(args)} arguments for {len(params)} parameters")
        converted = [
            _convert(name, param, arg, device_pointer)
            for param, arg in zip(params, args, strict=True)
        ]
        getattr(self.library, f"recis_host_launch_{name}")(
            ctypes.c_uint(grid), ctypes.c_uint(block), *converted
        )

    def launch(self, name: str, n: int, args: tuple) -> None:
        """Run ``name`` over ``n`` items on NumPy arrays (``args[0]`` is ``n``), as
        ``recis.core.cuda.loader.launch`` does on the GPU: nothing for no items."""
        assert args[0] == n >= 0, f"{name}: n is {n}, the first argument {args[0]}"
        if n:
            grid = min(-(-n // BLOCK), MAX_BLOCKS)
            self.run(name, grid, BLOCK, args, _host_pointer)


def _host_pointer(array):
    if not isinstance(array, np.ndarray):
        return None
    if not array.flags.c_contiguous:
        raise LaunchError("a kernel was given a non-contiguous array")
    return array.ctypes.data


def _convert(kernel: str, param: Param, arg, device_pointer):
    where = f"{kernel}: parameter {param.ctype} {param.name}"
    if param.pointer:
        if arg is None:
            return ctypes.c_void_p(0)
        address = device_pointer(arg)
        if address is not None:
            return ctypes.c_void_p(address)
        if isinstance(arg, np.integer) and arg.dtype.itemsize == 8:  # an address as a number
            return ctypes.c_void_p(int(arg.astype(np.uint64)))
        raise LaunchError(f"{where} was given {type(arg).__name__}, not a device array")
    c_type, dtype = param.scalar
    if isinstance(arg, bool | np.bool_) or not isinstance(arg, int | float | np.number):
        raise LaunchError(f"{where} was given {type(arg).__name__}")
    value = np.asarray(arg)  # CuPy's rules: int -> int64, float -> float64, NumPy scalars as is
    if value.dtype.itemsize != dtype.itemsize or (value.dtype.kind == "f") != (dtype.kind == "f"):
        raise LaunchError(f"{where} was given {value.dtype} (the kernel reads {dtype})")
    return c_type(value.view(dtype).item())


@cache
def build_for_host(source: str) -> HostKernels:
    """The :class:`HostKernels` of ``cuda/<source>``, built once per process (and cached on disk
    by the digest of the sources, the shim and the flags)."""
    compiler = shutil.which("g++")
    if compiler is None:
        raise RuntimeError("building CUDA sources for the host needs g++, which is not installed")
    path = CUDA_DIR / source
    expanded = subprocess.run(
        [compiler, *FLAGS, "-E", "-P", str(path)], check=True, capture_output=True, text=True
    ).stdout
    signatures = {
        name: [_param(p) for p in params.split(",")]
        for name, params in re.findall(r'extern "C" void (\w+)\s*\(([^)]*)\)', expanded)
    }
    code = f'#include "{path.name}"\n' + "".join(
        _launcher(name, params) for name, params in signatures.items()
    )
    digest = hashlib.sha256("\0".join([expanded, code, *FLAGS]).encode()).hexdigest()[:20]
    cache_dir = Path(tempfile.gettempdir()) / f"recis-host-cuda-{os.getuid()}"
    library = cache_dir / f"{path.stem}-{digest}.so"
    if not library.is_file():
        cache_dir.mkdir(exist_ok=True)
        wrapper = cache_dir / f"{path.stem}-{digest}-{os.getpid()}.cpp"
        wrapper.write_text(code)
        partial = wrapper.with_suffix(".so")
        command = [compiler, *FLAGS, "-O1", "-shared", "-fPIC", str(wrapper), "-o", str(partial)]
        subprocess.run(command, check=True)
        os.replace(partial, library)
        wrapper.unlink()
    return HostKernels(source, ctypes.CDLL(str(library)), signatures)


def _param(text: str) -> Param:
    text = " ".join(text.replace("__restrict__", "").split())
    ctype, name = re.fullmatch(r"(.*?[\s*])(\w+)", text).groups()
    return Param(" ".join(ctype.replace("*", " * ").split()), name)


def _launcher(name: str, params: list[Param]) -> str:
    """C++ of ``recis_host_launch_<name>(grid, block, params...)``: every thread of the grid
    runs the kernel in turn, blocks and threads last to first."""
    declared = ", ".join(f"{p.ctype} {p.name}" for p in params)
    names = ", ".join(p.name for p in params)
    return f"""
extern "C" void recis_host_launch_{name}(unsigned recis_grid, unsigned recis_block_size,
                                        {declared}) {{
  gridDim.x = recis_grid;
  blockDim.x = recis_block_size;
  for (unsigned recis_block = recis_grid; recis_block-- > 0;) {{
    for (unsigned recis_thread = recis_block_size; recis_thread-- > 0;) {{
      blockIdx.x = recis_block;
      threadIdx.x = recis_thread;
      {name}({names});
    }}
  }}
}}
"""

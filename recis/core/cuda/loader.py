"""The one loader of the engine's CUDA kernels.

Kernel sources are ``cuda/<source>.cu`` files whose kernels are ``extern "C" __global__``
grid-stride loops (see ``cuda/common.cuh``). :func:`module` compiles a source once per
(source, options, device) with CuPy (NVRTC, ``-std=c++17``, ``cuda/`` on the include path);
CuPy also keeps the binary in its disk cache. :func:`launch` runs a kernel over ``n`` items on
CuPy's current stream, which :func:`recis.core.cuda.streams.on_stream` can set to the caller's.

Importing this module does not import CuPy:

>>> source_dir().joinpath("common.cuh").is_file()
True
"""

from __future__ import annotations

import hashlib
import importlib
import pathlib
import threading
from functools import cache
from types import ModuleType

# in a checkout `src` links to the repository's cuda/; a built wheel holds a copy of it there
_PACKAGED_SOURCES = pathlib.Path(__file__).parent / "src"
_CHECKOUT_SOURCES = pathlib.Path(__file__).parents[3] / "cuda"
MAX_BLOCKS_PER_SM = 32  # grid cap: enough resident blocks to hide latency, few enough to stride
_modules: dict[tuple, object] = {}
_kernels: dict[tuple, object] = {}
_lock = threading.Lock()


def source_dir() -> pathlib.Path:
    """The directory of the ``.cu``/``.cuh`` sources: ``cuda/`` of a source checkout, or the
    copy shipped inside the installed package."""
    for candidate in (_PACKAGED_SOURCES, _CHECKOUT_SOURCES):
        if (candidate / "common.cuh").is_file():
            return candidate.resolve()
    raise FileNotFoundError(f"CUDA sources not found in {_PACKAGED_SOURCES} or {_CHECKOUT_SOURCES}")


def require_cupy(what: str) -> ModuleType:
    """Return the ``cupy`` module, or raise ``ImportError`` saying that ``what`` needs it.

    >>> message = ""
    >>> try:
    ...     cupy = require_cupy("GPU dedupe")
    ... except ImportError as error:
    ...     message = str(error)
    >>> message in ("", "GPU dedupe needs CuPy: pip install 'recis[cuda]'")
    True
    """
    try:
        return importlib.import_module("cupy")
    except ImportError as error:
        raise ImportError(f"{what} needs CuPy: pip install 'recis[cuda]'") from error


def module(source: str, options: tuple[str, ...] = ()):
    """The compiled ``cupy.RawModule`` of ``cuda/<source>`` for the current device."""
    cupy = require_cupy(f"CUDA kernel source {source!r}")
    key = (source, tuple(options), cupy.cuda.runtime.getDevice())
    with _lock:
        compiled = _modules.get(key)
        if compiled is None:
            code = _read_source(source)
            all_options = ("-std=c++17", f"-I{source_dir()}", *options)
            compiled = cupy.RawModule(code=code, options=all_options)
            compiled.compile()
            _modules[key] = compiled
    return compiled


def kernel(source: str, name: str, options: tuple[str, ...] = ()):
    """The ``extern "C"`` kernel ``name`` of ``cuda/<source>`` as a ``cupy.RawKernel``."""
    cupy = require_cupy(f"CUDA kernel {name!r}")
    key = (source, tuple(options), cupy.cuda.runtime.getDevice(), name)
    found = _kernels.get(key)
    if found is None:
        found = _kernels.setdefault(key, module(source, options).get_function(name))
    return found


def launch(kernel, n: int, args: tuple, block: int = 256, shared_mem: int = 0) -> None:
    """Launch grid-stride ``kernel`` over ``n`` items on CuPy's current stream.

    ``args`` are the kernel's arguments in order (the kernel receives ``n`` through them); the
    grid covers ``n`` items but is capped at :data:`MAX_BLOCKS_PER_SM` blocks per multiprocessor.
    Nothing is launched when ``n`` is 0.
    """
    if n <= 0:
        return
    blocks = int(min(-(-n // block), MAX_BLOCKS_PER_SM * _multiprocessors()))
    kernel((blocks,), (block,), args, shared_mem=shared_mem)


def _multiprocessors() -> int:
    cupy = require_cupy("launching a CUDA kernel")
    return _multiprocessors_of(cupy.cuda.runtime.getDevice())


@cache
def _multiprocessors_of(device: int) -> int:
    cupy = require_cupy("launching a CUDA kernel")
    return int(cupy.cuda.runtime.getDeviceProperties(device)["multiProcessorCount"])


def _read_source(source: str) -> str:
    """The text of ``source``, led by a digest of the shared headers (CuPy's disk cache keys on
    the text it is given, so a header change must change that text) and a ``#line`` directive
    that keeps compiler messages pointing at the file's own lines."""
    path = source_dir() / source
    if not path.is_file():
        raise FileNotFoundError(f"CUDA source {source!r} not found in {source_dir()}")
    return f'// headers {_headers_digest()}\n#line 1 "{source}"\n{path.read_text()}'


def _headers_digest() -> str:
    digest = hashlib.sha256()
    for header in sorted(source_dir().glob("*.cuh")):
        digest.update(header.name.encode())
        digest.update(header.read_bytes())
    return digest.hexdigest()[:16]

"""The one loader of the engine's CUDA kernels.

Kernel sources are ``cuda/<source>.cu`` files whose kernels are ``extern "C" __global__``
grid-stride loops (see ``cuda/common.cuh``). :func:`module` compiles a source once per
(source, options, device) with CuPy (NVRTC, the options of :data:`COMPILE_OPTIONS`, ``cuda/`` on
the include path); CuPy also keeps the binary in its disk cache. A source that cannot be built or
loaded raises :class:`KernelBuildError`, which says what to install.

Floating point: CuPy adds ``-ftz=true`` to every compilation, so float32 subnormals would be
flushed to zero by ordinary operators. The kernels whose results must equal the CPU twins' bit
for bit do their float32 arithmetic with explicit PTX that never flushes and never fuses
(``cuda/row_blocks.cuh``), and ``--fmad=false`` keeps the compiler from fusing anything else; the
CPU twins keep subnormals too, so results agree down to the smallest values (Adam's second
moment of a tiny gradient is one). :func:`launch` runs a kernel over ``n`` items on
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
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from types import ModuleType

# in a checkout `src` links to the repository's cuda/; a built wheel holds a copy of it there
_PACKAGED_SOURCES = pathlib.Path(__file__).parent / "src"
_CHECKOUT_SOURCES = pathlib.Path(__file__).parents[3] / "cuda"
COMPILE_OPTIONS = ("-std=c++17", "--fmad=false")  # every option we pass; CuPy adds -ftz=true
MAX_BLOCKS_PER_SM = 32  # grid cap: enough resident blocks to hide latency, few enough to stride
_modules: dict[tuple, object] = {}
_kernels: dict[tuple, object] = {}
_lock = threading.Lock()
_launched: Counter = Counter()  # launches of each kernel in this process


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


class KernelBuildError(RuntimeError):
    """CuPy could not compile or load a kernel source; the message says what to install."""


INSTALL_HINT = (
    "install the CuPy build of your CUDA major version with its toolkit wheels: "
    "pip install 'recis[cuda12]' or 'recis[cuda13]'"
)


def explain_build_error(source: str, error: Exception) -> KernelBuildError:
    """A :class:`KernelBuildError` for ``error``, raised by CuPy building ``source``.

    >>> error = RuntimeError("CUDA_ERROR_NO_BINARY_FOR_GPU: no kernel image is available")
    >>> str(explain_build_error("id_map.cu", error)).split(" (")[0]
    'cuda/id_map.cu: no kernel image for this GPU'
    """
    text = f"{type(error).__name__}: {error}"
    if "NO_BINARY_FOR_GPU" in text or "no kernel image" in text:
        why = "no kernel image for this GPU"
        fix = "the installed CuPy/NVRTC does not know this GPU's architecture; " + INSTALL_HINT
    elif "UNSUPPORTED_PTX_VERSION" in text or "driver version is insufficient" in text.lower():
        why = "the NVIDIA driver is older than the CUDA that CuPy compiles with"
        fix = "update the driver, or " + INSTALL_HINT.replace("install", "install instead", 1)
    elif "header" in text.lower() or "cannot open source file" in text or "CUDA_PATH" in text:
        why = "CuPy cannot find the CUDA headers it needs to compile"
        fix = INSTALL_HINT + ", or set CUDA_PATH to a CUDA toolkit"
    else:
        why, fix = "CuPy could not build the kernels", INSTALL_HINT
    return KernelBuildError(f"cuda/{source}: {why} ({text}); {fix}")


def module(source: str, options: tuple[str, ...] = ()):
    """The compiled ``cupy.RawModule`` of ``cuda/<source>`` for the current device."""
    cupy = require_cupy(f"CUDA kernel source {source!r}")
    key = (source, tuple(options), cupy.cuda.runtime.getDevice())
    with _lock:
        compiled = _modules.get(key)
        if compiled is None:
            code = _read_source(source)
            all_options = (*COMPILE_OPTIONS, f"-I{source_dir()}", *options)
            try:
                compiled = cupy.RawModule(code=code, options=all_options)
                compiled.compile()
            except Exception as error:  # CuPy's compiler and driver errors have no common base
                raise explain_build_error(source, error) from error
            _modules[key] = compiled
    return compiled


def kernel(source: str, name: str, options: tuple[str, ...] = ()):
    """The ``extern "C"`` kernel ``name`` of ``cuda/<source>`` as a ``cupy.RawKernel``."""
    cupy = require_cupy(f"CUDA kernel {name!r}")
    key = (source, tuple(options), cupy.cuda.runtime.getDevice(), name)
    found = _kernels.get(key)
    if found is None:
        compiled = module(source, options)
        try:  # loading the binary onto the device happens here
            function = compiled.get_function(name)
        except Exception as error:
            raise explain_build_error(source, error) from error
        found = _kernels.setdefault(key, Kernel(name, function))
    return found


class Kernel:
    """A compiled kernel and its name; :func:`launch` runs it."""

    __slots__ = ("function", "name")

    def __init__(self, name: str, function) -> None:
        self.name = name
        self.function = function

    def __call__(self, grid, block, args, shared_mem: int = 0):
        return self.function(grid, block, args, shared_mem=shared_mem)


@contextmanager
def counting_launches() -> Iterator[Counter]:
    """The launches of the engine's kernels inside the ``with`` block (all threads), by name.

    >>> with counting_launches() as launched:
    ...     pass
    >>> sum(launched.values())
    0
    """
    before = Counter(_launched)
    launched: Counter = Counter()
    try:
        yield launched
    finally:
        launched.update(_launched - before)


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
    _launched[getattr(kernel, "name", "?")] += 1


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
    text = path.read_text(encoding="utf-8")
    return f'// headers {_headers_digest()}\n#line 1 "{source}"\n{text}'


def _headers_digest() -> str:
    digest = hashlib.sha256()
    for header in sorted(source_dir().glob("*.cuh")):
        digest.update(header.name.encode())
        digest.update(header.read_bytes())
    return digest.hexdigest()[:16]

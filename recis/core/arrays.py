"""Array namespace resolution and zero-copy exchange with torch and JAX over DLPack.

The engine works on NumPy arrays (CPU) and CuPy arrays (GPU). Arrays from other frameworks enter
through :func:`as_engine_array` and leave through :func:`export_like`; both share memory instead of
copying. The engine never imports torch or jax: a framework array's own module is looked up in
``sys.modules``, where it must already be, since the caller holds one of its arrays.

>>> import numpy as np
>>> a = as_engine_array(np.arange(3), name="ids")
>>> namespace(a).__name__
'numpy'
>>> device_namespace("cpu").__name__, to_host(a) is a
('numpy', True)
"""

from __future__ import annotations

import sys
from types import ModuleType

import numpy as np

SUPPORTED_DTYPES = frozenset(
    np.dtype(name)
    for name in (
        *("bool", "int8", "int16", "int32", "int64"),
        *("uint8", "uint16", "uint32", "uint64"),
        *("float16", "float32", "float64"),
    )
)

ALIGNMENT = 64  # bytes; JAX on CPU shares a buffer only when it is this aligned


def array_module(array) -> ModuleType:
    """``cupy`` for a CuPy array, else ``numpy`` (lists and scalars too; CuPy is never imported
    here). :func:`namespace` is the strict form, for engine arrays only.

    >>> array_module([1, 2]).__name__
    'numpy'
    """
    cupy = sys.modules.get("cupy")
    return cupy if cupy is not None and isinstance(array, cupy.ndarray) else np


def int64_vector(array, name: str) -> np.ndarray:
    """A contiguous int64 view or copy of a 1-D integer array (uint64 is reinterpreted), on the
    array's device (NumPy or CuPy)."""
    xp = array_module(array)
    array = xp.asarray(array)
    if array.ndim != 1 or array.dtype.kind not in "iu":
        raise TypeError(f"{name} must be a 1-D integer array, got {array.dtype}{list(array.shape)}")
    if array.itemsize == 8:
        return xp.ascontiguousarray(array).view(np.int64)
    return array.astype(np.int64)


def namespace(array) -> ModuleType:
    """Return the array module (``numpy`` or ``cupy``) that owns an engine array."""
    if isinstance(array, np.ndarray):
        return np
    cupy = sys.modules.get("cupy")
    if cupy is not None and isinstance(array, cupy.ndarray):
        return cupy
    raise TypeError(f"expected a NumPy or CuPy array, got {type(array).__name__}")


def device_namespace(device: str, owner: str = "array") -> ModuleType:
    """The array module of ``device``: ``numpy`` for ``"cpu"``, ``cupy`` for ``"cuda"``.

    ``owner`` names what asks (e.g. ``"table 'user'"``) in errors: ``ValueError`` for another
    device, ``ImportError`` for ``"cuda"`` without CuPy.
    """
    if device == "cpu":
        return np
    if device == "cuda":
        from recis.core.cuda.loader import require_cupy

        return require_cupy(f"{owner} on cuda")
    raise ValueError(f"{owner}: device must be 'cpu' or 'cuda', got {device!r}")


def to_host(array) -> np.ndarray:
    """A NumPy array of ``array``'s values: NumPy arrays as they are, CuPy arrays copied to the
    host (this waits for the device)."""
    return array if isinstance(array, np.ndarray) else namespace(array).asnumpy(array)


def empty(shape, dtype, xp: ModuleType = np) -> np.ndarray:
    """Allocate an uninitialised array whose buffer is 64-byte aligned.

    Aligned buffers can be handed to JAX without a copy.

    >>> empty((2, 3), np.float32).ctypes.data % ALIGNMENT
    0
    """
    dtype = np.dtype(dtype)
    if xp is not np:
        return xp.empty(shape, dtype)
    count = int(np.prod(shape, dtype=np.int64))
    raw = np.empty(count * dtype.itemsize + ALIGNMENT, np.uint8)
    start = -raw.ctypes.data % ALIGNMENT
    return raw[start : start + count * dtype.itemsize].view(dtype).reshape(shape)


def zeros(shape, dtype, xp: ModuleType = np) -> np.ndarray:
    """Like :func:`empty`, filled with zeros."""
    out = empty(shape, dtype, xp)
    out[...] = 0
    return out


def as_engine_array(x, name: str = "array"):
    """Return a NumPy/CuPy view of ``x`` (NumPy, CuPy, torch, JAX, any DLPack producer).

    No data is copied. ``name`` appears in error messages. Raises ``TypeError`` for unsupported
    dtypes and ``ValueError`` for non-contiguous input.

    >>> as_engine_array([1, 2])
    Traceback (most recent call last):
    ...
    TypeError: array: expected an array with __dlpack__, got list
    """
    array = _import(x, name)
    if array.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"{name}: unsupported dtype {array.dtype}")
    if not array.flags.c_contiguous:
        raise ValueError(f"{name}: array must be C-contiguous (got strides {array.strides})")
    return array


def _import(x, name: str):
    if isinstance(x, np.ndarray):
        return x
    cupy = sys.modules.get("cupy")
    if cupy is not None and isinstance(x, cupy.ndarray):
        return x
    if not hasattr(x, "__dlpack__"):
        raise TypeError(f"{name}: expected an array with __dlpack__, got {type(x).__name__}")
    device_type, _ = x.__dlpack_device__()
    try:
        if device_type == 1:  # kDLCPU
            return np.from_dlpack(x)
        if cupy is None:
            raise TypeError(f"{name}: a GPU array needs CuPy installed (pip install recis[cuda])")
        return cupy.from_dlpack(x)
    except BufferError as error:
        raise TypeError(f"{name}: cannot share {type(x).__name__} over DLPack: {error}") from None
    except RuntimeError as error:  # e.g. "Unsupported dtype in DLTensor"
        raise TypeError(f"{name}: {error} ({getattr(x, 'dtype', '?')})") from None


def framework_of(x) -> str:
    """Name of the framework that owns ``x``: ``"numpy"``, ``"cupy"``, ``"torch"`` or ``"jax"``."""
    root = type(x).__module__.split(".", 1)[0]
    if root in ("jaxlib", "jax"):
        return "jax"
    return root


def export_like(array, like):
    """Hand an engine array to the framework of ``like`` without copying.

    >>> import numpy as np
    >>> export_like(np.ones(2), like=np.zeros(1)).tolist()
    [1.0, 1.0]
    """
    framework = framework_of(like)
    if framework in ("numpy", "cupy"):
        return array
    module = sys.modules.get(framework)
    if module is None:
        raise TypeError(f"cannot export to {type(like).__name__}: {framework} is not imported")
    if framework == "jax":
        return module.dlpack.from_dlpack(array)
    return module.from_dlpack(array)

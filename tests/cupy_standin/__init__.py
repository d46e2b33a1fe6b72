"""A stand-in for CuPy on machines without a GPU, for running ``tests/gpu`` on the host.

Like numba's CUDA simulator: :class:`ndarray` holds a NumPy array (its "device memory") and
behaves as a CuPy array does where the engine and the tests use it — operators and NumPy
functions through ``__array_ufunc__``/``__array_function__``, integer indexing and reductions give
0-d arrays, implicit conversion to NumPy (``numpy.asarray``) is a ``TypeError``, and mixing with
NumPy arrays in an operation is a ``TypeError`` — while the module's functions are NumPy's on
those arrays. :class:`RawModule` kernels are the real ``cuda/*.cu`` sources built for the host
(``tests/host_cuda.py``) and launched with CuPy's argument conventions, every argument checked
against the kernel's C signature.

Every device operation is counted (:func:`counting`): our kernels by name, CuPy's own work
(element-wise operations, reductions, copies, fills) by the operation that would launch it, and
the copies between host and device, each of which waits for the GPU in CuPy.

Arrays made by the allocating functions (``empty``, ``zeros``, ``full``, ...) ask the allocator
set with ``cupy.cuda.set_allocator`` for their bytes, on the current stream, so tests can see
where memory comes from; the memory itself is NumPy's.

What it cannot check: races and memory ordering between GPU threads (a launch runs its threads one
after another), streams (everything runs at once, in call order), flush-to-zero, and speed.

>>> import cupy_standin as cp
>>> x = cp.arange(4, dtype=cp.int64)
>>> int((x * 2).sum()), type(x[1]).__name__, x[1].ndim
(12, 'ndarray', 0)
"""

from __future__ import annotations

import contextlib
import re
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy
from host_cuda import CUDA_DIR, build_for_host

from cupy_standin import cuda

__version__ = "13.0.0+standin"
STANDIN = True  # tests can tell the stand-in from CuPy
_counts: Counter = Counter()
_lock = threading.Lock()


def count(kind: str, name: str) -> None:
    """Record one device operation: ``kind`` is "kernel", "cupy" or "copy"."""
    with _lock:
        _counts[(kind, name)] += 1


@contextlib.contextmanager
def counting() -> Iterator[Counter]:
    """The device operations issued inside the ``with`` block, as a Counter of (kind, name)."""
    with _lock:
        before = Counter(_counts)
    result: Counter = Counter()
    try:
        yield result
    finally:
        with _lock:
            result.update(_counts - before)


class ndarray:
    """A device array: a NumPy array that only the stand-in's functions read."""

    __slots__ = ("_a",)
    __array_priority__ = 100

    def __init__(self, shape, dtype=float, order="C"):
        self._a = numpy.empty(shape, dtype, order=order)

    @classmethod
    def _of(cls, array: numpy.ndarray) -> ndarray:
        out = object.__new__(cls)
        out._a = array
        return out

    # --- attributes ---------------------------------------------------------------------------
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    size = property(lambda self: self._a.size)
    ndim = property(lambda self: self._a.ndim)
    nbytes = property(lambda self: self._a.nbytes)
    itemsize = property(lambda self: self._a.itemsize)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: ndarray._of(self._a.T))
    data = property(lambda self: cuda.MemoryPointer(self._a.ctypes.data))
    device = property(lambda self: cuda.Device(0))

    def __len__(self) -> int:
        return len(self._a)

    def __iter__(self):
        return (ndarray._of(self._a[(i, ...)]) for i in range(len(self._a)))

    def __repr__(self) -> str:
        return f"standin.{self._a!r}"

    # --- values read on the host: each waits for the device in CuPy ---------------------------
    def get(self, stream=None, out=None) -> numpy.ndarray:
        return asnumpy(self, out=out)

    def set(self, value, stream=None) -> None:
        count("copy", "host_to_device")
        self._a[...] = numpy.asarray(value)

    def item(self):
        count("copy", "device_to_host")
        return self._a.item()

    def tolist(self):
        count("copy", "device_to_host")
        return self._a.tolist()

    def __int__(self) -> int:
        return int(self.item())

    def __float__(self) -> float:
        return float(self.item())

    def __bool__(self) -> bool:
        return bool(self.item())

    def __index__(self) -> int:
        if self._a.dtype.kind not in "iu" or self._a.ndim:
            raise TypeError("only integer scalar arrays can be converted to a scalar index")
        return int(self.item())

    def __array__(self, dtype=None, copy=None):
        raise TypeError(
            "Implicit conversion to a NumPy array is not allowed. "
            "Please use `.get()` to construct a NumPy array explicitly."
        )

    # --- DLPack: the memory is host memory, so consumers see a CPU array -----------------------
    def __dlpack__(self, **kwargs):
        return self._a.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self._a.__dlpack_device__()

    def toDlpack(self):
        return self._a.__dlpack__()

    # --- indexing -----------------------------------------------------------------------------
    def __getitem__(self, key):
        key = _index(key)
        result = self._a[key]
        if isinstance(result, numpy.generic):  # CuPy gives a 0-d view
            result = self._a[(*key, ...) if isinstance(key, tuple) else (key, ...)]
        elif not numpy.may_share_memory(result, self._a):
            count("cupy", "take")
        return ndarray._of(result)

    def __setitem__(self, key, value) -> None:
        count("cupy", "setitem")
        self._a[_index(key)] = _operand(value)

    # --- methods: NumPy's, on the device ----------------------------------------------------
    def __getattr__(self, name: str):
        method = getattr(self._a, name)
        if not callable(method):
            raise AttributeError(name)

        def call(*args, **kwargs):
            result = method(*_unwrap(args), **_unwrap(kwargs))
            return _device_result(result, name, self._a)

        return call

    def argsort(self, axis=-1, kind=None):
        return argsort(self, axis)

    def sort(self, axis=-1, kind=None) -> None:
        count("cupy", "sort")
        self._a.sort(axis, kind="stable")

    def fill(self, value) -> None:
        count("cupy", "fill")
        self._a.fill(_operand(value))

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        count("cupy", ufunc.__name__ if method == "__call__" else f"{ufunc.__name__}.{method}")
        result = getattr(ufunc, method)(*_operands(inputs), **_unwrap(kwargs))
        return _wrap(result)

    def __array_function__(self, func, types, args, kwargs):
        return _call(func, args, kwargs)

    def __copy__(self):
        return self.copy()

    def __deepcopy__(self, memo):
        return self.copy()

    def __reduce__(self):
        raise TypeError("a device array cannot be pickled; copy it to the host first")


def _binary(op):
    def forward(self, other):
        return self.__array_ufunc__(op, "__call__", self, other)

    def reflected(self, other):
        return self.__array_ufunc__(op, "__call__", other, self)

    def in_place(self, other):
        self.__array_ufunc__(op, "__call__", self, other, out=(self,))
        return self

    return forward, reflected, in_place


for _name, _ufunc in {
    "add": numpy.add, "sub": numpy.subtract, "mul": numpy.multiply,
    "truediv": numpy.true_divide, "floordiv": numpy.floor_divide, "mod": numpy.remainder,
    "pow": numpy.power, "and": numpy.bitwise_and, "or": numpy.bitwise_or,
    "xor": numpy.bitwise_xor, "lshift": numpy.left_shift, "rshift": numpy.right_shift,
    "matmul": numpy.matmul,
}.items():  # fmt: skip
    _forward, _reflected, _in_place = _binary(_ufunc)
    setattr(ndarray, f"__{_name}__", _forward)
    setattr(ndarray, f"__r{_name}__", _reflected)
    setattr(ndarray, f"__i{_name}__", _in_place)
for _name, _ufunc in {
    "eq": numpy.equal, "ne": numpy.not_equal, "lt": numpy.less, "le": numpy.less_equal,
    "gt": numpy.greater, "ge": numpy.greater_equal,
}.items():  # fmt: skip
    setattr(ndarray, f"__{_name}__", _binary(_ufunc)[0])
for _name, _ufunc in {
    "neg": numpy.negative,
    "pos": numpy.positive,
    "abs": numpy.absolute,
    "invert": numpy.invert,
}.items():
    setattr(
        ndarray, f"__{_name}__", lambda self, u=_ufunc: self.__array_ufunc__(u, "__call__", self)
    )
ndarray.__hash__ = None  # type: ignore[assignment]


def _unwrap(value):
    """``value`` with device arrays replaced by their NumPy arrays (in lists, tuples, dicts)."""
    if isinstance(value, ndarray):
        return value._a
    if isinstance(value, list | tuple):
        return type(value)(_unwrap(v) for v in value)
    if isinstance(value, dict):
        return {k: _unwrap(v) for k, v in value.items()}
    return value


def _operand(value):
    """A device array's NumPy array, or a scalar; host arrays are refused, as CuPy refuses them."""
    if isinstance(value, ndarray):
        return value._a
    if isinstance(value, numpy.ndarray | list | tuple):
        raise TypeError(f"Unsupported type {type(value)}")
    return value


def _operands(values) -> list:
    return [_operand(v) for v in values]


def _index(key):
    """An index with device arrays unwrapped (CuPy also takes host arrays and lists there)."""
    if isinstance(key, tuple):
        return tuple(_unwrap(k) for k in key)
    return _unwrap(key)


def _wrap(result):
    if isinstance(result, numpy.ndarray):
        return ndarray._of(result)
    if isinstance(result, numpy.generic):
        return ndarray._of(numpy.asarray(result))
    if isinstance(result, tuple):
        return tuple(_wrap(r) for r in result)
    if isinstance(result, list):
        return [_wrap(r) for r in result]
    return result


def _device_result(result, name: str, source):
    """A method's or function's result on the device, counting the work that made it (none for
    a view of ``source``)."""
    if isinstance(result, numpy.ndarray):
        if source is None or not numpy.may_share_memory(result, source):
            count("cupy", name)
    elif isinstance(result, numpy.generic | tuple | list):  # not metadata such as ndim
        count("cupy", name)
    return _wrap(result)


def _refuse_host_arrays(values) -> None:
    for value in values:
        if isinstance(value, numpy.ndarray):
            raise TypeError(f"Unsupported type {type(value)}")
        if isinstance(value, list | tuple):
            _refuse_host_arrays(value)


def _call(func, args, kwargs):
    _refuse_host_arrays(args)
    _refuse_host_arrays(kwargs.values())
    result = func(*_unwrap(args), **_unwrap(kwargs))
    first = next((a for a in args if isinstance(a, ndarray)), None)
    return _device_result(result, func.__name__, None if first is None else first._a)


# --- module functions ---------------------------------------------------------------------------


def asarray(a, dtype=None, order=None):
    """``a`` on the device: a device array as it is (or converted), host data copied there."""
    if isinstance(a, ndarray):
        if dtype is None or numpy.dtype(dtype) == a.dtype:
            return a
        return a.astype(dtype)
    if hasattr(a, "__cuda_array_interface__") or _on_device(a):
        return from_dlpack(a)
    count("copy", "host_to_device")
    return ndarray._of(numpy.array(a, dtype=dtype, order=order or "K", copy=True))


def array(a, dtype=None, copy=True, order="K", ndmin=0):
    if isinstance(a, ndarray):
        count("cupy", "copy")
        return ndarray._of(numpy.array(a._a, dtype=dtype, copy=copy, order=order, ndmin=ndmin))
    count("copy", "host_to_device")
    return ndarray._of(numpy.array(a, dtype=dtype, copy=True, order=order, ndmin=ndmin))


def asnumpy(a, stream=None, out=None):
    """A host copy of a device array (host data as it is)."""
    if not isinstance(a, ndarray):
        return numpy.asarray(a)
    count("copy", "device_to_host")
    if out is not None:
        out[...] = a._a
        return out
    return a._a.copy()


def _on_device(a) -> bool:
    device = getattr(a, "__dlpack_device__", None)
    return device is not None and not isinstance(a, numpy.ndarray) and device()[0] != 1


def from_dlpack(a):
    """A device array sharing ``a``'s memory (the stand-in's device memory is host memory)."""
    if isinstance(a, ndarray):
        return a
    return ndarray._of(numpy.from_dlpack(a))


fromDlpack = from_dlpack


def get_array_module(*args):
    return sys.modules[__name__] if any(isinstance(a, ndarray) for a in args) else numpy


def empty(shape, dtype=float, order="C"):
    return ndarray._of(cuda.allocated(numpy.empty(shape, dtype, order=order)))


def empty_like(a, dtype=None, order="K", shape=None):
    return ndarray._of(cuda.allocated(numpy.empty_like(_unwrap(a), dtype, order, shape=shape)))


class _MemoryPool:
    def malloc(self, size: int):
        return cuda.MemoryPointer(cuda.runtime.malloc(size))


def get_default_memory_pool() -> _MemoryPool:
    return _MemoryPool()


def _allocating(name: str):
    make = getattr(numpy, name)

    def allocate(*args, **kwargs):
        _refuse_host_arrays(args)
        count("cupy", name)
        return ndarray._of(cuda.allocated(make(*_unwrap(args), **_unwrap(kwargs))))

    allocate.__name__ = name
    return allocate


zeros, ones, full, arange = (_allocating(n) for n in ("zeros", "ones", "full", "arange"))
zeros_like, ones_like, full_like = (
    _allocating(n) for n in ("zeros_like", "ones_like", "full_like")
)


def argsort(a, axis=-1, kind=None):
    """Stable, as CuPy's sorts always are."""
    return _call(numpy.argsort, (a,), {"axis": axis, "kind": "stable"})


def sort(a, axis=-1, kind=None):
    """Stable, as CuPy's sorts always are."""
    return _call(numpy.sort, (a,), {"axis": axis, "kind": "stable"})


def __getattr__(name: str):
    """NumPy's function of that name on device arrays; NumPy's dtypes and constants."""
    attribute = getattr(numpy, name)
    if isinstance(attribute, type) or not callable(attribute):
        return attribute

    def function(*args, **kwargs):
        return _call(attribute, args, kwargs)

    function.__name__ = name
    return function


# --- kernels ------------------------------------------------------------------------------------


class RawModule:
    """A ``cuda/*.cu`` source built for the host; the code must be what the engine's loader
    reads from that file (named by its ``#line`` directive)."""

    def __init__(self, code=None, *, path=None, options=(), backend="nvrtc", **kwargs):
        match = re.search(r'^#line 1 "([\w.]+)"\n', code or "", re.MULTILINE)
        if match is None:
            raise ValueError("the CuPy stand-in builds only cuda/*.cu sources (no #line 1 found)")
        self.source = match.group(1)
        text = (CUDA_DIR / self.source).read_text(encoding="utf-8")
        if not code.endswith(text):
            raise ValueError(f"code is not the text of cuda/{self.source}")
        for option in options:
            if option.startswith("-I") and not Path(option[2:]).is_dir():
                raise ValueError(f"include directory {option[2:]} does not exist")
        self.options = tuple(options)
        self._kernels = None

    def compile(self, log_stream=None) -> None:
        if self._kernels is None:
            self._kernels = build_for_host(self.source)

    def get_function(self, name: str) -> RawKernel:
        self.compile()
        if name not in self._kernels.signatures:
            raise AttributeError(f"cuda/{self.source} has no kernel {name!r}")
        return RawKernel._of(self._kernels, name)


class RawKernel:
    """A kernel of a :class:`RawModule`; calling it launches it as CuPy does."""

    @classmethod
    def _of(cls, kernels, name: str) -> RawKernel:
        out = object.__new__(cls)
        out._kernels, out.name = kernels, name
        return out

    def __call__(
        self, grid, block, args, *, shared_mem=0, stream=None, enable_cooperative_groups=False
    ):
        grid, block = _dim(grid), _dim(block)
        if not 0 < block <= 1024:
            raise ValueError(f"{self.name}: {block} threads per block (1 to 1024 allowed)")
        if not isinstance(args, tuple):
            raise TypeError(f"{self.name}: kernel arguments must be a tuple")
        count("kernel", self.name)
        self._kernels.run(self.name, grid, block, args, _device_pointer)


def _dim(value) -> int:
    sizes = value if isinstance(value, tuple) else (value,)
    if any(not isinstance(s, int) for s in sizes) or any(s != 1 for s in sizes[1:]):
        raise TypeError(f"the stand-in launches 1-D grids of Python ints, got {value!r}")
    return sizes[0]


def _device_pointer(arg):
    if isinstance(arg, numpy.ndarray):
        raise TypeError(f"Unsupported type {type(arg)}: a host array passed to a kernel")
    if not isinstance(arg, ndarray):
        return None
    if not arg.flags.c_contiguous:
        raise TypeError("a non-contiguous device array passed to a kernel")
    return arg._a.ctypes.data


def install() -> None:
    """Make ``import cupy`` give the stand-in in this process."""
    module = sys.modules[__name__]
    module.__name__ = "cupy"  # as error messages name it
    sys.modules["cupy"] = module
    sys.modules["cupy.cuda"] = cuda
    sys.modules["cupy.cuda.runtime"] = cuda.runtime

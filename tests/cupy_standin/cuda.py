"""``cupy.cuda`` of the stand-in: one device, streams and events as bookkeeping only (work runs
when it is issued), pinned memory as host memory, and an allocator hook.

>>> from cupy_standin import cuda
>>> with cuda.Stream() as stream:
...     cuda.get_current_stream() is stream
True
"""

from __future__ import annotations

import itertools
import threading
import weakref
from types import SimpleNamespace

import numpy

MULTIPROCESSORS = 2  # a small grid: launches run every thread of it on the host
_current = threading.local()
_stream_ids = itertools.count(0x1000)


class MemoryPointer:
    """A device address (``.ptr``), as CuPy's ``ndarray.data`` gives it."""

    def __init__(self, ptr: int) -> None:
        self.ptr = ptr


class Device:
    """The one device (id 0); entering it makes it current."""

    def __init__(self, device=None) -> None:
        self.id = 0 if device is None else int(device)
        if self.id != 0:
            raise ValueError(f"the CuPy stand-in has one device (0), not {self.id}")
        self.compute_capability = "90"

    def synchronize(self) -> None:
        """Nothing to wait for: the stand-in runs work when it is issued."""

    def use(self) -> None:
        """There is only one device."""

    def __enter__(self) -> Device:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def __eq__(self, other) -> bool:
        return isinstance(other, Device) and other.id == self.id

    def __hash__(self) -> int:
        return self.id


class Stream:
    """A stream: a distinct ``ptr``; ``with stream:`` makes it current on this thread."""

    def __init__(self, null: bool = False, non_blocking: bool = False, ptds: bool = False):
        self.ptr = 0 if null else next(_stream_ids)
        self.device_id = 0

    def synchronize(self) -> None:
        """Nothing to wait for."""

    def wait_event(self, event) -> None:
        """Nothing to wait for."""

    def record(self, event=None):
        event = event or Event()
        event.record(self)
        return event

    def use(self) -> Stream:
        _stack().append(self)
        return self

    def __enter__(self) -> Stream:
        _stack().append(self)
        return self

    def __exit__(self, *exc) -> None:
        _stack().pop()

    def __eq__(self, other) -> bool:
        return isinstance(other, Stream) and other.ptr == self.ptr

    def __hash__(self) -> int:
        return self.ptr


class ExternalStream(Stream):
    """A stream made elsewhere (a raw ``cudaStream_t``)."""

    def __init__(self, ptr: int, device_id: int = -1) -> None:
        self.ptr = ptr
        self.device_id = 0


class Event:
    """An event: recorded work is always complete."""

    def __init__(self, block: bool = False, disable_timing: bool = False, interprocess=False):
        self.done = True

    def record(self, stream=None) -> None:
        """Recorded work has already run."""

    def synchronize(self) -> None:
        """Nothing to wait for."""

    def query(self) -> bool:
        return True


Stream.null = Stream(null=True)


def _stack() -> list:
    if not hasattr(_current, "streams"):
        _current.streams = []
    return _current.streams


def get_current_stream(device_id: int | None = None) -> Stream:
    stack = _stack()
    return stack[-1] if stack else Stream.null


class PinnedMemory:
    """Page-locked host memory: here plain host memory, with its address as ``ptr``."""

    def __init__(self, size: int, flags: int = 0) -> None:
        self._buffer = numpy.zeros(size, numpy.uint8)
        self.ptr = self._buffer.ctypes.data
        self.size = size


def PinnedMemoryPointer(memory: PinnedMemory, offset: int):
    """A buffer over ``memory`` from ``offset`` (what ``numpy.frombuffer`` reads)."""
    return memoryview(memory._buffer)[offset:]


_allocator = None


def set_allocator(allocator=None) -> None:
    """Record the allocator CuPy would allocate device memory with (the stand-in's arrays hold
    NumPy memory whatever it is)."""
    global _allocator
    _allocator = allocator


def get_allocator():
    return _allocator


def allocated(array: numpy.ndarray) -> numpy.ndarray:
    """``array``, freshly allocated by the stand-in: the allocator set with
    :func:`set_allocator` is asked for its bytes, given back when ``array`` dies."""
    if _allocator is not None:
        pointer = _allocator(array.nbytes)
        release = getattr(pointer, "release", None)
        if release is not None:
            weakref.finalize(array, release)
    return array


class PythonFunctionAllocator:
    """CuPy's allocator calling ``malloc(bytes, device, stream)`` and ``free(address, device,
    stream)``, with CuPy's current stream at the time of the allocation."""

    def __init__(self, malloc_func, free_func) -> None:
        self._malloc, self._free = malloc_func, free_func

    def malloc(self, size: int) -> MemoryPointer:
        stream = get_current_stream().ptr
        pointer = MemoryPointer(self._malloc(size, 0, stream))
        pointer.release = lambda: self._free(pointer.ptr, 0, stream)
        return pointer


memory = SimpleNamespace(
    PythonFunctionAllocator=PythonFunctionAllocator, MemoryPointer=MemoryPointer
)


def _device_properties(device: int = 0) -> dict:
    Device(device)
    return {"multiProcessorCount": MULTIPROCESSORS, "name": b"CuPy stand-in", "major": 9}


runtime = SimpleNamespace(
    getDevice=lambda: 0,
    getDeviceCount=lambda: 1,
    getDeviceProperties=_device_properties,
    deviceSynchronize=lambda: None,
    hostAllocMapped=2,
    driverGetVersion=lambda: 12080,
    runtimeGetVersion=lambda: 12080,
    is_hip=False,
    malloc=lambda size: next(_addresses),
    free=lambda address: None,
)
_addresses = itertools.count(0x7000_0000_0000, 256)

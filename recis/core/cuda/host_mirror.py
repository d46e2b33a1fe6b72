"""Device values the host reads without a copy or a wait: :class:`HostMirror`, and errors found
on the device raised later on the host: :class:`DeferredErrors`.

A mirror is pinned host memory mapped into the GPU's address space. :meth:`HostMirror.publish`
queues a one-thread kernel (``cuda/host_mirror.cu``) on CuPy's current stream that writes device
int64 values there; the host reads :attr:`HostMirror.values` whenever it likes and sees what the
stream had computed when that kernel ran, which may be older than the host's latest call. The
last value of a publication is written after the others are visible: read it first.

The engine uses mirrors to keep host-side bounds tight (rows and ids a GPU table may hold) while
the counts themselves stay on the device, and to report what the device found wrong (a NaN
gradient, a tag out of range) at a later call instead of waiting for every step.

Importing this module does not import CuPy:

>>> DeferredErrors.__name__
'DeferredErrors'
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

import numpy as np

from recis.core.cuda import loader

SOURCE = "host_mirror.cu"
MAPPED = 2  # cudaHostAllocMapped


class HostMirror:
    """``size`` int64 values in pinned, device-mapped host memory, zero at first.

    Args:
        size: number of values.
    """

    def __init__(self, size: int) -> None:
        cupy = loader.require_cupy("a host mirror of device values")
        flags = getattr(cupy.cuda.runtime, "hostAllocMapped", MAPPED)
        self._memory = cupy.cuda.PinnedMemory(max(size, 1) * 8, flags)
        buffer = cupy.cuda.PinnedMemoryPointer(self._memory, 0)
        self.values = np.frombuffer(buffer, np.int64, size)  # the host's view
        self.values[:] = 0
        self._address = int(self._memory.ptr)  # the same address on the device (unified)

    def address(self, start: int = 0) -> np.uint64:
        """The device address of ``self.values[start]``, for kernels that publish themselves."""
        return np.uint64(self._address + 8 * start)

    def publish(self, values, start: int = 0) -> None:
        """Queue the copy of the device int64 array ``values`` to ``self.values[start:]``."""
        count = values.size
        if start < 0 or start + count > self.values.size:
            raise IndexError(f"{count} values at {start} do not fit a mirror of {self.values.size}")
        address = np.uint64(self._address + 8 * start)
        values = values.astype(np.int64, copy=False).reshape(-1)
        kernel = loader.kernel(SOURCE, "publish_to_host")
        loader.launch(kernel, 1, (values, np.int64(count), address))


class DeferredErrors:
    """Errors the device finds, raised on the host at a later call, without waiting.

    :meth:`report` takes a device count of bad items and a function making the error from that
    count; :meth:`raise_found` raises the first error whose count has reached the host and is
    not zero (``wait=True`` first waits for the device, so that every report is seen).

    Args:
        slots: reports that may be in flight at once; one more waits for the device.
    """

    def __init__(self, slots: int = 4096) -> None:
        self._mirror = HostMirror(2 * slots)  # per slot: the count, then 1 once it is written
        self._lock = threading.Lock()  # reports may come from several threads
        self._free = list(range(slots))
        self._pending: deque[tuple[int, Callable[[int], Exception]]] = deque()  # oldest first

    def report(self, bad, make_error: Callable[[int], Exception]) -> None:
        """Queue the check of ``bad`` (a device integer array of one element): if it is not
        zero, a later :meth:`raise_found` raises ``make_error(bad)``."""
        cupy = loader.require_cupy("reporting errors found on the GPU")
        pair = cupy.ones(2, np.int64)
        pair[:1] = bad.reshape(-1)[:1]
        self._mirror.publish(pair, self._claim(make_error))

    def reserve(self, make_error: Callable[[int], Exception]) -> np.uint64:
        """The device address of a report for a kernel to write itself: the count of bad
        items, then (once the count is visible to the host) 1. A later :meth:`raise_found`
        raises ``make_error(count)`` if the count is not zero. Launches nothing."""
        return self._mirror.address(self._claim(make_error))

    def _claim(self, make_error: Callable[[int], Exception]) -> int:
        """The first mirror value of a free report slot, now pending (waiting for the device
        while every slot is in flight)."""
        while True:
            with self._lock:
                if self._free:
                    slot = self._free.pop()
                    self._mirror.values[2 * slot + 1] = 0
                    self._pending.append((slot, make_error))
                    return 2 * slot
            self.raise_found(wait=True)  # every slot is in flight: wait for them

    def raise_found(self, wait: bool = False) -> None:
        """Raise the first reported error that has reached the host (all of them with
        ``wait``), after forgetting the reports that have, oldest first up to the first that
        has not (reports queued on one stream arrive in order)."""
        if wait and self._pending:
            loader.require_cupy("waiting for the GPU").cuda.Device().synchronize()
        found = None
        with self._lock:
            while self._pending and self._mirror.values[2 * self._pending[0][0] + 1]:
                slot, make_error = self._pending.popleft()
                count = int(self._mirror.values[2 * slot])
                self._free.append(slot)
                if count and found is None:
                    found = make_error(count)
        if found is not None:
            raise found


_errors: DeferredErrors | None = None


def deferred_errors() -> DeferredErrors:
    """The process's :class:`DeferredErrors` (made on first use)."""
    global _errors
    if _errors is None:
        _errors = DeferredErrors()
    return _errors


def raise_deferred_errors(wait: bool = False) -> None:
    """Raise the first error the GPU has found since the last call (a tag out of range, a
    non-finite gradient); ``wait`` first waits for the device, so that none is missed. Does
    nothing in a process that never reported one."""
    if _errors is not None:
        _errors.raise_found(wait)

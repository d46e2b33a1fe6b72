"""Run an iterator on a background thread, ``size`` items ahead, without ever hanging.

The thread puts items into a bounded queue; an exception raised by the iterator is handed to the
consumer and re-raised there, and the end of the iterator is marked by a sentinel. The consumer
waits with a timeout and notices a thread that died without a word. :meth:`close` (also called
when the consumer is garbage collected) tells the thread to stop; the thread then closes the
iterator, which releases whatever threads it runs. :meth:`close` may be called from any thread,
also while another thread waits for the next item (that thread then sees the end): stages of a
pipeline can run one after the other on threads of their own.

>>> items = Prefetcher(iter(range(3)), size=2)
>>> list(items)
[0, 1, 2]
"""

from __future__ import annotations

import atexit
import queue
import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass

from recis.core.threads import kernel_threads

_POLL_SECONDS = 0.05
_EXIT_JOIN_SECONDS = 2.0
_LIVE: weakref.WeakSet = weakref.WeakSet()


@dataclass(frozen=True)
class _Failure:
    error: BaseException


_END = object()


class Prefetcher:
    """Iterate ``items`` on a daemon thread named ``name``, at most ``size`` items ahead of the
    consumer (plus the one the thread is working on)."""

    def __init__(self, items: Iterator, size: int, name: str = "recis-io-prefetch") -> None:
        self._queue = queue.Queue(maxsize=max(1, size))
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=_produce, args=(items, self._queue, self._stop), name=name
        )
        self._thread.daemon = True
        self._thread.start()
        self._done = False
        _LIVE.add(self)

    def __iter__(self) -> Prefetcher:
        return self

    def __next__(self):
        if self._done:
            raise StopIteration
        item = self._get()
        if item is _END:
            self.close()
            raise StopIteration
        if isinstance(item, _Failure):
            self.close()
            raise item.error
        return item

    def close(self) -> None:
        """Stop the thread (it exits after its current item) and drop the queued items."""
        self._done = True
        self._stop.set()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return

    def __del__(self) -> None:
        self.close()

    def _get(self):
        while True:
            try:
                return self._queue.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                if self._stop.is_set():  # closed while waiting
                    raise StopIteration from None
                if not self._thread.is_alive() and self._queue.empty():
                    self._done = True
                    raise RuntimeError(f"{self._thread.name} ended without a result") from None


@atexit.register
def _stop_live_threads() -> None:
    """At interpreter exit, stop the threads of prefetchers still running (e.g. of an epoch left
    unfinished) and let them release their readers, instead of killing them inside a read."""
    live = list(_LIVE)
    for prefetcher in live:
        prefetcher.close()
    for prefetcher in live:
        prefetcher._thread.join(_EXIT_JOIN_SECONDS)


def _produce(items: Iterator, out: queue.Queue, stop: threading.Event) -> None:
    """The thread's loop. Engine kernels it calls run on this thread alone, so input work does
    not fight the training step for the cores (see :mod:`recis.core.threads`)."""
    try:
        with kernel_threads(1):
            for item in items:
                if not _put(out, item, stop):
                    return
        _put(out, _END, stop)
    except BaseException as error:  # handed to the consumer, raised there
        _put(out, _Failure(error), stop)
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()


def _put(out: queue.Queue, item, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            out.put(item, timeout=_POLL_SECONDS)
            return True
        except queue.Full:
            continue
    return False

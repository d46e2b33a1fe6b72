"""``PrefetchDataset``: RecIS's background prefetch of any iterable, with an explicit close.

Each ``iter()`` starts (on the first ``next``) a daemon thread that reads the input up to
``buffer_size`` items ahead into a queue. The end of the input, and an exception raised by it
(re-raised as ``RuntimeError("prefetch worker failed")`` from the original), reach the consumer
in order; either closes the iterator. ``close()`` stops the thread and drops what it queued; the
thread closes the input (an input that is inside ``next()`` cannot be interrupted, so the
consumer never closes a running input). When the thread does not stop within ``_CLOSE_TIMEOUT``
seconds, ``close()`` raises ``TimeoutError`` and keeps everything for a retry. The consumer
waits ``_QUEUE_TIMEOUT`` seconds at a time and notices a thread that died without a result.
``next()`` and ``close()`` are called by one consumer (not concurrently).

>>> items = iter(PrefetchDataset(range(4), buffer_size=2))
>>> next(items), next(items)
(0, 1)
>>> items.close()
>>> next(items)
Traceback (most recent call last):
...
StopIteration
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterable, Iterator

logger = logging.getLogger(__name__)
_QUEUE_TIMEOUT = 0.1
_CLOSE_TIMEOUT = 5.0
_END = object()


class InputFailure:
    """An exception of the input, on its way to the consumer."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


class ClosedWhenCollected:
    """Mixin of prefetch iterators: ``close()`` when collected, and a ``_close_quietly()`` for
    paths that must not raise; failures are logged."""

    def _close_quietly(self) -> None:
        try:
            self.close()
        except Exception as error:
            logger.error(f"prefetch cleanup failed: {error!r}")

    def __del__(self) -> None:
        try:
            self.close()
        except Exception as error:
            logger.warning(f"prefetch iterator cleanup was incomplete: {error!r}")


class _Runner(threading.Thread):
    """Reads ``iterator`` into ``items`` until its end or ``stop``, then closes it."""

    def __init__(self, items: queue.Queue, iterator: Iterator, stop: threading.Event) -> None:
        super().__init__(daemon=True, name="recis-prefetch-dataset")
        self._items, self._iterator, self._stopping = items, iterator, stop

    def _put(self, item) -> None:
        while not self._stopping.is_set():
            try:
                self._items.put(item, timeout=_QUEUE_TIMEOUT)
                return
            except queue.Full:
                continue

    def run(self) -> None:
        last = self._read()
        last = self._close_input(last)
        if not self._stopping.is_set():
            self._put(last)
        elif isinstance(last, InputFailure):
            logger.error(f"prefetch input failed while closing: {last.error!r}")

    def _read(self):
        try:
            while not self._stopping.is_set():
                try:
                    item = next(self._iterator)
                except StopIteration:
                    break
                self._put(item)
                del item
        except BaseException as error:  # handed to the consumer
            return InputFailure(error)
        return _END

    def _close_input(self, last):
        try:
            close_iterator(self._iterator)
            self._iterator = None
        except BaseException as error:
            if last is _END:
                return InputFailure(error)
            logger.error(f"prefetch input failed to close: {error!r}")
        return last


class _PrefetchIterator(ClosedWhenCollected):
    """One pass of a :class:`PrefetchDataset` (see the module docstring)."""

    def __init__(self, dataset, input_iterator: Iterator, buffer_size: int = 1) -> None:
        self._dataset = dataset
        self._input_iterator = input_iterator
        self._queue: queue.Queue = queue.Queue(maxsize=buffer_size)
        self._stop = threading.Event()
        self._runner = _Runner(self._queue, input_iterator, self._stop)
        self._started = False
        self._closed = False

    def __iter__(self) -> _PrefetchIterator:
        return self

    def __next__(self):
        if self._stop.is_set():
            raise StopIteration
        if not self._started:
            self._runner.start()
            self._started = True
        item = self._next_item()
        if item is _END:
            self.close()
            raise StopIteration
        if isinstance(item, InputFailure):
            self._close_quietly()
            raise RuntimeError("prefetch worker failed") from item.error
        return item

    def _next_item(self):
        while True:
            try:
                return self._queue.get(timeout=_QUEUE_TIMEOUT)
            except queue.Empty:
                if self._runner.is_alive():
                    continue
            try:  # the runner may have queued its last items just before it ended
                return self._queue.get_nowait()
            except queue.Empty:
                self.close()
                raise RuntimeError("prefetch worker exited without a result") from None

    def close(self) -> None:
        """Stop the thread, close the input and drop the queued items (see the module
        docstring); a second call does nothing."""
        if self._closed:
            return
        self._stop.set()
        if self._started:
            if self._runner is threading.current_thread():
                raise RuntimeError("the prefetch thread cannot close its own iterator")
            self._runner.join(timeout=_CLOSE_TIMEOUT)
            if self._runner.is_alive():
                raise TimeoutError("prefetch worker is still running; retry close()")
        close_iterator(self._runner._iterator)  # not started, or the thread's close failed
        self._runner._iterator = None
        _drain(self._queue)
        self._input_iterator = None
        self._dataset = None
        self._closed = True


class PrefetchDataset:
    """Iterate ``input_dataset`` on a thread, ``buffer_size`` items ahead (see the module
    docstring)."""

    def __init__(self, input_dataset: Iterable, buffer_size: int = 1) -> None:
        if buffer_size < 1:
            raise ValueError(f"PrefetchDataset: buffer_size must be at least 1, got {buffer_size}")
        self._input_dataset = input_dataset
        self._buffer_size = buffer_size

    def __iter__(self) -> _PrefetchIterator:
        return _PrefetchIterator(self, iter(self._input_dataset), self._buffer_size)


def close_iterator(iterator) -> None:
    """Call ``iterator.close()`` if it has one."""
    close = getattr(iterator, "close", None)
    if callable(close):
        close()


def _drain(items: queue.Queue) -> None:
    while True:
        try:
            items.get_nowait()
        except queue.Empty:
            return

"""RecIS's pipeline prefetch: each batch's transform runs ahead, released by ``notify()``.

:func:`cuda_prefetch_iterator` yields ``transform(raw)`` for each raw batch of ``iterator``. The
next batch's transform starts when the training step calls ``notify()`` (after its forward pass,
say), or after ``_GATE_FALLBACK_TIMEOUT`` seconds without one, so that it overlaps the rest of
the step. Modes: a worker thread transforms raw batches the consumer fetches in ``next()``
(default), or fetches them too (``fetch_in_thread``), or ``notify()`` transforms inline
(``enable_thread=False``). ``lazy_start`` waits for the first ``next()`` to start.

With CUDA, a transform runs on a side stream of priority ``stream_priority``; the consumer's
stream waits for it through an event, and the tensors of the batch handed out stay referenced
until the consumer's stream has passed the next ``next()`` or ``close()``. On the CPU there is no
stream: the same iterator, with the batch's tensors kept until the next batch.

Errors of the input or the transform reach the consumer (from the worker as
``RuntimeError("cuda prefetch worker failed")``) and close the iterator; ``close()`` stops the
worker (``TimeoutError`` after ``_CLOSE_TIMEOUT`` seconds, retryable), closes the input and drops
queued batches.

>>> batches = cuda_prefetch_iterator(iter([1, 2, 3]), lambda raw: raw * 10)
>>> next(batches), batches.notify(), next(batches)
(10, None, 20)
>>> batches.close()
"""

from __future__ import annotations

import collections
import enum
import queue
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import fields, is_dataclass

import torch

from recis.backends.torch.ragged import RaggedTensor
from recis.backends.torch.recis_path import serve_at_recis_path
from recis.io.prefetch_dataset import ClosedWhenCollected, InputFailure, close_iterator

_QUEUE_TIMEOUT = 0.1
_CLOSE_TIMEOUT = 5.0
_GATE_FALLBACK_TIMEOUT = 1.0
_MAX_COLLECT_DEPTH = 64
_END = object()


class StreamPriority(enum.IntEnum):
    """CUDA stream priorities (lower is scheduled first)."""

    HIGH = -2
    DEFAULT = -1
    LOW = 0


def _holdables_of(batch) -> list[torch.Tensor]:
    """The tensors ``batch`` holds, in order, each once: through an object's
    ``holdable_tensors()`` (tried first), ``RaggedTensor`` parts, mappings, dataclass instances,
    lists, tuples and sets. Deeper than ``_MAX_COLLECT_DEPTH`` levels raises ``ValueError``."""
    found: dict[int, torch.Tensor] = {}
    _collect(batch, found, set(), 0)
    return list(found.values())


def _collect(value, found: dict, seen: set, depth: int) -> None:
    if depth > _MAX_COLLECT_DEPTH:
        raise ValueError(f"batch exceeds the nesting limit of {_MAX_COLLECT_DEPTH} levels")
    if isinstance(value, torch.Tensor):
        found.setdefault(id(value), value)
        return
    if id(value) in seen or isinstance(value, str | bytes | type):
        return
    seen.add(id(value))
    for child in _children(value):
        _collect(child, found, seen, depth + 1)


def _children(value) -> list:
    protocol = getattr(value, "holdable_tensors", None)
    if callable(protocol):
        held = protocol()
        if not isinstance(held, list | tuple):
            raise TypeError(f"holdable_tensors() must return a list, got {type(held).__name__}")
        return [t for t in held if isinstance(t, torch.Tensor)]
    if isinstance(value, RaggedTensor):
        return [value.values(), *value.offsets(), value.weight()]
    if isinstance(value, Mapping):
        return list(value.values())
    if is_dataclass(value):
        return [getattr(value, f.name) for f in fields(value)]
    if isinstance(value, list | tuple | set | frozenset):
        return list(value)
    return []


class _Streams:
    """The side stream and the consumer-side bookkeeping of CUDA hand-offs (inactive on CPU)."""

    def __init__(self, priority: int) -> None:
        self.active = torch.cuda.is_available()
        self.side = torch.cuda.Stream(priority=int(priority)) if self.active else None

    def run(self, transform: Callable, raw):
        """``(transform(raw), ready event or None)``, on the side stream with CUDA."""
        if not self.active:
            return transform(raw), None
        with torch.cuda.stream(self.side):
            out = transform(raw)
            return out, self.side.record_event()


class _Base(ClosedWhenCollected):
    """The consumer side shared by both modes."""

    def __init__(self, iterator: Iterator, transform: Callable, stream_priority: int) -> None:
        self._input_iterator = iterator
        self._transform = transform
        self._streams = _Streams(stream_priority)
        self._prev_holdables: list | None = None
        self._prev_stream = None
        self._raw_inflight: collections.deque = collections.deque()
        self._out_inflight: collections.deque = collections.deque()
        self._closed = False

    def __iter__(self):
        return self

    def _hand_out(self, out, ready):
        """Give ``out`` to the consumer: its stream waits for ``ready``; the previous batch's
        tensors are kept until that stream has passed this point."""
        self._retire_previous()
        if ready is not None:
            self._prev_stream = torch.cuda.current_stream()
            self._prev_stream.wait_event(ready)
        self._prev_holdables = _holdables_of(out)
        return out

    def _retire_previous(self) -> None:
        if self._streams.active and self._prev_holdables is not None:
            event = torch.cuda.current_stream().record_event()
            self._out_inflight.append((self._prev_holdables, event))
        self._prev_holdables = None
        while self._out_inflight and self._out_inflight[0][1].query():
            self._out_inflight.popleft()

    def _release(self) -> None:
        self._retire_previous()
        for _, event in self._out_inflight:
            event.synchronize()
        self._out_inflight.clear()
        self._raw_inflight.clear()
        self._prev_stream = None

    def _close_input(self) -> None:
        close_iterator(self._input_iterator)
        self._input_iterator = None


class _InlinePrefetchIterator(_Base):
    """``notify()`` transforms the next batch on the calling thread."""

    def __init__(self, iterator, transform, stream_priority, lazy_start: bool) -> None:
        super().__init__(iterator, transform, stream_priority)
        self._staged_raw = None
        self._pending = None
        if not lazy_start:
            self._prepare()

    def __next__(self):
        if self._closed:
            raise StopIteration
        if self._pending is None:
            self._prepare()
        out, ready = self._pending
        self._pending = None
        if out is _END:
            self.close()
            raise StopIteration
        return self._hand_out(out, ready)

    def notify(self) -> None:
        """Transform the next batch now."""
        if not self._closed and self._pending is None:
            self._prepare()

    def _prepare(self) -> None:
        try:
            raw = next(self._input_iterator)
        except StopIteration:
            self._pending = (_END, None)
            return
        except BaseException:
            self._close_quietly()
            raise
        self._staged_raw = raw
        try:
            self._pending = self._streams.run(self._transform, raw)
        except BaseException:
            self._close_quietly()
            raise
        finally:
            self._staged_raw = None

    def close(self) -> None:
        if self._closed:
            return
        self._close_input()
        self._staged_raw = self._pending = None
        self._release()
        self._closed = True


class _CudaPrefetchIterator(_Base):
    """A worker thread transforms (and with ``fetch_in_thread`` fetches) the batches."""

    def __init__(self, iterator, transform, stream_priority, buffer_size, lazy_start, fetch):
        super().__init__(iterator, transform, stream_priority)
        self._fetch_in_thread = fetch
        self._raw_queue: queue.Queue = queue.Queue(maxsize=buffer_size)
        self._out_queue: queue.Queue = queue.Queue(maxsize=buffer_size)
        self._released = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, daemon=True, name="recis-prefetch")
        self._input_done = False
        self._started = False
        if not lazy_start:
            self._start()

    def _start(self) -> None:
        self._started = True
        self._thread.start()
        self._feed()

    def __next__(self):
        if self._closed:
            raise StopIteration
        if not self._started:
            self._start()
        self._feed()
        item = self._next_output()
        if item is _END:
            self.close()
            raise StopIteration
        if isinstance(item, InputFailure):
            self._close_quietly()
            raise RuntimeError("cuda prefetch worker failed") from item.error
        return self._hand_out(*item)

    def notify(self) -> None:
        """Let the worker transform the next batch."""
        self._released.set()

    def _feed(self) -> None:
        """Fetch one raw batch on this thread for the worker (unless it fetches)."""
        if self._fetch_in_thread or self._input_done:
            return
        try:
            raw = next(self._input_iterator)
        except StopIteration:
            raw, self._input_done = _END, True
        except BaseException as error:  # reaches the consumer after the batches before it
            raw, self._input_done = InputFailure(error), True
        self._put(self._raw_queue, raw)

    def _next_output(self):
        while True:
            try:
                return self._out_queue.get(timeout=_QUEUE_TIMEOUT)
            except queue.Empty:
                if self._thread.is_alive():
                    continue
            try:
                return self._out_queue.get_nowait()
            except queue.Empty:
                self.close()
                raise RuntimeError("cuda prefetch worker died without reporting a result") from None

    def _work(self) -> None:
        try:
            first = True
            while not self._stop.is_set():
                if not first:
                    self._released.wait(timeout=_GATE_FALLBACK_TIMEOUT)
                    self._released.clear()
                first = False
                raw = _END if self._stop.is_set() else self._fetch()
                if raw is _END or isinstance(raw, InputFailure):
                    self._put_output(raw)
                    return
                if not self._put_output(self._streams.run(self._transform, raw)):
                    return
        except BaseException as error:  # handed to the consumer
            self._put_output(InputFailure(error))

    def _fetch(self):
        if self._fetch_in_thread:
            try:
                return next(self._input_iterator)
            except StopIteration:
                return _END
        while not self._stop.is_set():
            try:
                return self._raw_queue.get(timeout=_QUEUE_TIMEOUT)
            except queue.Empty:
                continue
        return _END

    def _put_output(self, item) -> bool:
        return self._put(self._out_queue, item)

    def _put(self, items: queue.Queue, item) -> bool:
        while not self._stop.is_set():
            try:
                items.put(item, timeout=_QUEUE_TIMEOUT)
                return True
            except queue.Full:
                if items is self._raw_queue and not self._thread.is_alive():
                    return False
        return False

    def close(self) -> None:
        if self._closed:
            return
        self._stop.set()
        self._released.set()
        if self._started:
            if self._thread is threading.current_thread():
                raise RuntimeError("the prefetch worker cannot close its own iterator")
            self._thread.join(timeout=_CLOSE_TIMEOUT)
            if self._thread.is_alive():
                raise TimeoutError("cuda prefetch worker is still running; retry close()")
        self._close_input()
        for items in (self._raw_queue, self._out_queue):
            while not items.empty():
                items.get_nowait()
        self._release()
        self._closed = True


def cuda_prefetch_iterator(
    iterator: Iterator,
    transform: Callable,
    buffer_size: int = 1,
    lazy_start: bool = False,
    stream_priority: int = StreamPriority.LOW,
    enable_thread: bool = True,
    fetch_in_thread: bool = False,
):
    """An iterator of ``transform(raw)`` over ``iterator`` (see the module docstring)."""
    if fetch_in_thread and not enable_thread:
        raise ValueError("fetch_in_thread needs enable_thread: inline mode has no worker")
    if buffer_size < 1:
        raise ValueError(f"buffer_size must be at least 1, got {buffer_size}")
    if not enable_thread:
        return _InlinePrefetchIterator(iterator, transform, stream_priority, lazy_start)
    return _CudaPrefetchIterator(
        iterator, transform, stream_priority, buffer_size, lazy_start, fetch_in_thread
    )


serve_at_recis_path(__name__, "recis.io.cuda_prefetch_dataset")

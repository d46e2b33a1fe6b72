"""The prefetch thread: order, exceptions handed to the consumer, stopping an endless source."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from recis.io.prefetch import Prefetcher


def prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "recis-io-prefetch"]


def wait_until_no_prefetch_threads() -> list[threading.Thread]:
    deadline = time.monotonic() + 5
    while prefetch_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    return prefetch_threads()


def test_items_arrive_in_order_and_then_the_iterator_stays_exhausted():
    items = Prefetcher(iter(range(100)), size=3)
    assert list(items) == list(range(100))
    assert list(items) == []
    assert wait_until_no_prefetch_threads() == []


def test_an_exception_reaches_the_consumer_after_the_items_before_it():
    def failing():
        yield 1
        yield 2
        raise OSError("disk gone")

    items = Prefetcher(failing(), size=1)
    assert [next(items), next(items)] == [1, 2]
    with pytest.raises(OSError, match="disk gone"):
        next(items)
    assert wait_until_no_prefetch_threads() == []


def test_closing_stops_an_endless_source_and_closes_it():
    closed = threading.Event()

    def endless():
        try:
            yield from itertools.count()
        finally:
            closed.set()

    items = Prefetcher(endless(), size=2)
    assert next(items) == 0
    items.close()
    assert closed.wait(5)
    assert wait_until_no_prefetch_threads() == []
    with pytest.raises(StopIteration):
        next(items)


def test_dropping_the_consumer_stops_the_thread():
    items = Prefetcher(itertools.count(), size=2)
    next(items)
    del items
    assert wait_until_no_prefetch_threads() == []

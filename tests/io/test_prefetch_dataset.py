"""RecIS's ``PrefetchDataset`` and the close protocol of ``WrapEndDataset``."""

from __future__ import annotations

import threading

import pytest

from recis.io import prefetch_dataset
from recis.io.prefetch_dataset import PrefetchDataset
from recis.io.wrap_end_dataset import WrapEndDataset


class Source:
    """An input that records who closed it."""

    def __init__(self, values):
        self.values = iter(values)
        self.closed_by = []

    def __iter__(self):
        return self

    def __next__(self):
        return next(self.values)

    def close(self):
        self.closed_by.append(threading.current_thread())


@pytest.mark.parametrize("buffer_size", [1, 3])
def test_items_arrive_in_order_and_the_thread_closes_the_input(buffer_size):
    source = Source(range(10))
    items = iter(PrefetchDataset(source, buffer_size=buffer_size))
    assert list(items) == list(range(10))
    assert items._closed and not items._runner.is_alive()
    assert source.closed_by == [items._runner]


def test_each_iter_is_a_new_pass():
    dataset = PrefetchDataset([1, 2])
    assert list(dataset) == [1, 2] and list(dataset) == [1, 2]


def test_an_input_error_reaches_the_consumer_after_the_items_before_it():
    def produce():
        yield "a"
        raise KeyError("column x")

    items = iter(PrefetchDataset(produce()))
    assert next(items) == "a"
    with pytest.raises(RuntimeError, match="prefetch worker failed") as caught:
        next(items)
    assert isinstance(caught.value.__cause__, KeyError)
    with pytest.raises(StopIteration):
        next(items)


def test_close_before_start_closes_the_input_here():
    source = Source([1])
    items = iter(PrefetchDataset(source))
    items.close()
    assert source.closed_by == [threading.current_thread()]
    assert items._input_iterator is None and items._dataset is None


def test_a_stuck_input_makes_close_time_out_and_a_retry_succeed(monkeypatch):
    release = threading.Event()

    def produce():
        yield 0
        release.wait(5)
        yield 1

    items = iter(PrefetchDataset(produce()))
    monkeypatch.setattr(prefetch_dataset, "_CLOSE_TIMEOUT", 0.05)
    assert next(items) == 0
    with pytest.raises(TimeoutError, match="retry close"):
        items.close()
    assert not items._closed
    release.set()
    items._runner.join(5)
    items.close()
    assert items._closed and items._queue.empty()


def test_buffer_size_must_be_positive():
    with pytest.raises(ValueError, match="buffer_size"):
        PrefetchDataset([1], buffer_size=0)


def test_wrap_end_close_ends_the_pass_and_closes_the_input():
    source = Source([1, 2, 3])
    pairs = iter(WrapEndDataset(source))
    assert next(pairs) == (False, 1)
    pairs.close()
    pairs.close()
    assert source.closed_by == [threading.current_thread()]
    assert next(pairs) == (True, None)


def test_wrap_end_keeps_a_failing_input_for_a_retry():
    class Failing(Source):
        def close(self):
            raise OSError("busy")

    source = Failing([1])
    pairs = iter(WrapEndDataset(source))
    with pytest.raises(OSError, match="busy"):
        pairs.close()
    assert pairs._input_iterator is source and not pairs._closed
    assert next(pairs) == (True, None)


def test_wrap_end_over_prefetch_closes_the_prefetch_thread():
    pairs = iter(WrapEndDataset(PrefetchDataset(range(100))))
    inner = pairs._input_iterator
    assert next(pairs) == (False, 0)
    pairs.close()
    assert inner._closed and not inner._runner.is_alive()

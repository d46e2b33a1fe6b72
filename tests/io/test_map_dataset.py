"""RecIS's ``MapDataset``: functions applied in order, and close forwarded through a chain."""

from __future__ import annotations

import pytest

from recis.io.map_dataset import MapDataset
from recis.io.prefetch_dataset import PrefetchDataset
from recis.io.wrap_end_dataset import WrapEndDataset


class Source:
    """An input whose iterators record their closes."""

    def __init__(self, values):
        self.values = values
        self.iterators = []

    def __iter__(self):
        iterator = SourceIterator(self.values)
        self.iterators.append(iterator)
        return iterator


class SourceIterator:
    def __init__(self, values):
        self.values = iter(values)
        self.closes = 0

    def __iter__(self):
        return self

    def __next__(self):
        return next(self.values)

    def close(self):
        self.closes += 1


def test_functions_apply_in_order_on_every_pass():
    dataset = MapDataset([1, 2, 3], map_funcs=[lambda x: x * 10, lambda x: x + 1])
    assert list(dataset) == [11, 21, 31]
    assert list(dataset) == [11, 21, 31]


def test_no_function_passes_items_through():
    assert list(MapDataset(range(3), map_funcs=[])) == [0, 1, 2]


def test_close_ends_the_pass_and_closes_the_input_once():
    source = Source(range(5))
    items = iter(MapDataset(source, map_funcs=[str]))
    assert next(items) == "0"
    items.close()
    items.close()
    assert source.iterators[0].closes == 1
    assert items._input_iterator is None
    assert list(items) == []


def test_a_prefetch_chain_is_released_from_its_outer_end():
    source = Source(range(4))
    outer = iter(WrapEndDataset(PrefetchDataset(MapDataset(source, [lambda x: x + 1]))))
    assert [next(outer) for _ in range(2)] == [(False, 1), (False, 2)]
    prefetch = outer._input_iterator
    outer.close()
    assert prefetch._closed and not prefetch._runner.is_alive()
    assert source.iterators[0].closes == 1


def test_an_error_of_a_function_reaches_the_consumer():
    items = iter(MapDataset([1, 0], map_funcs=[lambda x: 1 / x]))
    assert next(items) == 1.0
    with pytest.raises(ZeroDivisionError):
        next(items)


def test_a_function_that_is_not_callable_is_named():
    with pytest.raises(TypeError, match=r"map_funcs\[1\] is not callable: int"):
        MapDataset(range(3), map_funcs=[str, 3])

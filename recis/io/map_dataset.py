"""``MapDataset``: RecIS's dataset stage that applies functions to every item of its input.

Each item of ``input_dataset`` is passed through ``map_funcs`` in order. An iterator's
``close()`` ends the pass and closes the input iterator (when it has a ``close``), so that a
chain of stages (``MapDataset`` → ``PrefetchDataset`` → ``WrapEndDataset``) is released from
its outer end; if the input's ``close()`` raises, the input is kept for a retry.

>>> items = iter(MapDataset(range(3), map_funcs=[lambda x: x + 1, lambda x: x * 10]))
>>> list(items)
[10, 20, 30]
>>> items = iter(MapDataset(range(3), map_funcs=[str]))
>>> next(items), items.close(), next(items, "closed")
('0', None, 'closed')
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

from recis.io.prefetch_dataset import close_iterator


class _MapIterator:
    """One pass of a :class:`MapDataset` (see the module docstring)."""

    def __init__(self, input_iterator: Iterator, map_funcs: tuple[Callable, ...]) -> None:
        self._input_iterator = input_iterator
        self._map_funcs = map_funcs
        self._closed = False

    def __iter__(self) -> _MapIterator:
        return self

    def __next__(self):
        if self._closed:
            raise StopIteration
        item = next(self._input_iterator)
        for map_func in self._map_funcs:
            item = map_func(item)
        return item

    def close(self) -> None:
        """End the pass and close the input iterator; a second call does nothing."""
        if self._closed:
            return
        close_iterator(self._input_iterator)
        self._input_iterator = None
        self._closed = True


class MapDataset:
    """``map_funcs`` applied in order to each item of ``input_dataset``, per ``iter()``."""

    def __init__(self, input_dataset: Iterable, map_funcs: Sequence[Callable]) -> None:
        map_funcs = tuple(map_funcs)
        for index, map_func in enumerate(map_funcs):
            if not callable(map_func):
                raise TypeError(
                    f"MapDataset: map_funcs[{index}] is not callable: {type(map_func).__name__}"
                )
        self._input_dataset = input_dataset
        self._map_funcs = map_funcs

    def __iter__(self) -> _MapIterator:
        return _MapIterator(iter(self._input_dataset), self._map_funcs)

"""RecIS's end-of-data protocol: ``(is_end, batch)`` pairs that never run out.

A training loop over several ranks must stop on every rank at the same step, so it asks each
rank whether its data has ended (and all-reduces the answer) instead of relying on
``StopIteration``. The wrapper yields ``(False, batch)`` for every batch of one pass over the
dataset, then ``(True, None)`` for ever.

``close()`` ends the pass (later calls give ``(True, None)``) and closes the input, when it has a
``close``; if that raises, the input is kept so that ``close()`` can be retried.

>>> pairs = iter(WrapEndDataset([10, 20]))
>>> [next(pairs) for _ in range(4)]
[(False, 10), (False, 20), (True, None), (True, None)]
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator


class _WrapEndIterator:
    """One pass of a :class:`WrapEndDataset` (see the module docstring)."""

    def __init__(self, dataset: WrapEndDataset, input_iterator: Iterator) -> None:
        self._dataset = dataset
        self._input_iterator = input_iterator
        self._ended = False
        self._closed = False

    def __iter__(self) -> _WrapEndIterator:
        return self

    def __next__(self) -> tuple[bool, object]:
        if self._ended:
            return True, None
        try:
            return False, next(self._input_iterator)
        except StopIteration:
            self._ended = True
            return True, None

    def close(self) -> None:
        """End the pass and close the input (see the module docstring)."""
        if self._closed:
            return
        self._ended = True
        close = getattr(self._input_iterator, "close", None)
        if callable(close):
            close()
        self._input_iterator = None
        self._dataset = None
        self._closed = True


class WrapEndDataset:
    """``(False, batch)`` for each batch of ``dataset`` per ``iter()``, then ``(True, None)``."""

    def __init__(self, dataset: Iterable) -> None:
        self._dataset = dataset

    def __iter__(self) -> _WrapEndIterator:
        return _WrapEndIterator(self, iter(self._dataset))

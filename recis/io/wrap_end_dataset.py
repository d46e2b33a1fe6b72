"""RecIS's end-of-data protocol: ``(is_end, batch)`` pairs that never run out.

A training loop over several ranks must stop on every rank at the same step, so it asks each
rank whether its data has ended (and all-reduces the answer) instead of relying on
``StopIteration``. The wrapper yields ``(False, batch)`` for every batch of one pass over the
dataset, then ``(True, None)`` for ever.

>>> pairs = iter(WrapEndDataset([10, 20]))
>>> [next(pairs) for _ in range(4)]
[(False, 10), (False, 20), (True, None), (True, None)]
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator


class WrapEndDataset:
    """``(False, batch)`` for each batch of ``dataset`` per ``iter()``, then ``(True, None)``."""

    def __init__(self, dataset: Iterable) -> None:
        self._dataset = dataset

    def __iter__(self) -> Iterator[tuple[bool, object]]:
        return _with_end_marks(iter(self._dataset))


def _with_end_marks(batches: Iterator) -> Iterator[tuple[bool, object]]:
    for batch in batches:
        yield False, batch
    while True:
        yield True, None

"""``ReadRecorder``: a dict that remembers which keys were read, to find the columns of a batch a
dense program reads when the front ends export it.

>>> batch = ReadRecorder({"age": 1, "city": 2})
>>> _ = batch["age"]
>>> batch.read
{'age'}
"""

from __future__ import annotations


class ReadRecorder(dict):
    """A dict that remembers which keys were read (in :attr:`read`)."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.read: set[str] = set()

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)

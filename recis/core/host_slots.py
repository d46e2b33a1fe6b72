"""``HostSlots``: an id map's zeroed ``int64[capacity, 2]`` host slots, which grow in place.

The slots live in an anonymous private memory map. Growing remaps it (``mremap`` on Linux): the
old pages move without a copy, the new ones are zero without being written (the kernel zeroes
each page on first touch), and at no time are two slot arrays held. Where the platform cannot
remap, a new map is made and the old slots copied. Large maps ask for transparent huge pages.

>>> slots = HostSlots(4)
>>> slots.array[1] = (7, 8)
>>> slots.grow(16)
>>> slots.array.shape, slots.array[1].tolist(), int(slots.array[4:].sum())
((16, 2), [7, 8], 0)
"""

from __future__ import annotations

import mmap

import numpy as np

SLOT_BYTES = 16  # an int64 key and an int64 packing the tag and the row
HUGE_PAGE_BYTES = 1 << 21


class HostSlots:
    """Zeroed slots of ``capacity`` rows; :attr:`array` is their ``int64[capacity, 2]`` view.

    The view is the only one: callers must not keep other views across :meth:`grow`, which
    replaces :attr:`array`.
    """

    def __init__(self, capacity: int) -> None:
        self._map = _anonymous_map(capacity * SLOT_BYTES)
        self.array = self._view()

    def grow(self, capacity: int) -> None:
        """Make room for ``capacity`` slots; the existing ones keep their place and values."""
        self.array = None  # a remap needs the map's buffer unexported
        try:
            self._map.resize(capacity * SLOT_BYTES)
        except (BufferError, OSError, SystemError, ValueError):  # a view was kept, or no remap
            grown = _anonymous_map(capacity * SLOT_BYTES)
            old = np.frombuffer(self._map, np.int64)
            np.frombuffer(grown, np.int64)[: old.size] = old
            self._map = grown  # the old map goes with its last view
        _advise_huge_pages(self._map)
        self.array = self._view()

    def _view(self) -> np.ndarray:
        return np.frombuffer(self._map, np.int64).reshape(-1, 2)


def _anonymous_map(nbytes: int) -> mmap.mmap:
    private = getattr(mmap, "MAP_PRIVATE", 0) | getattr(mmap, "MAP_ANONYMOUS", 0)
    memory = mmap.mmap(-1, nbytes, flags=private) if private else mmap.mmap(-1, nbytes)
    _advise_huge_pages(memory)
    return memory


def _advise_huge_pages(memory: mmap.mmap) -> None:
    if len(memory) >= HUGE_PAGE_BYTES and hasattr(mmap, "MADV_HUGEPAGE"):
        memory.madvise(mmap.MADV_HUGEPAGE)

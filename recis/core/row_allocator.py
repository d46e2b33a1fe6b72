"""Row numbers for a table: fresh rows from a high-water mark, erased rows reused first.

>>> rows = RowAllocator()
>>> rows.allocate(3).tolist()
[0, 1, 2]
>>> rows.release(np.array([1]))
>>> rows.allocate(2).tolist()
[1, 3]
"""

from __future__ import annotations

import numpy as np


class RowAllocator:
    """Hands out row numbers in ``[0, high_water)``; released rows are handed out again first.

    Reuse is last-released-first, so allocation is deterministic for a given call sequence.
    Tables on a GPU use its device twin,
    :class:`~recis.core.cuda.row_allocator.DeviceRowAllocator`.
    """

    def __init__(self) -> None:
        self.high_water = 0
        self._free = np.empty(0, np.int64)
        self._free_count = 0

    @property
    def num_free(self) -> int:
        """Released rows waiting to be reused."""
        return self._free_count

    @property
    def num_live(self) -> int:
        """Rows currently handed out."""
        return self.high_water - self._free_count

    def live_bound(self) -> int:
        """:attr:`num_live`, exact here (a GPU table's allocator gives a bound without waiting:
        :class:`~recis.core.cuda.row_allocator.DeviceRowAllocator`)."""
        return self.num_live

    def high_water_bound(self) -> int:
        """:attr:`high_water`, exact here (see :meth:`live_bound`)."""
        return self.high_water

    def allocate(self, count: int) -> np.ndarray:
        """Return ``count`` rows: released ones (newest first), then fresh ones."""
        reused = min(count, self._free_count)
        recycled = self._free[self._free_count - reused : self._free_count][::-1]
        self._free_count -= reused
        fresh = count - reused
        # the first `reused` entries of this range are overwritten by the recycled rows
        rows = np.arange(self.high_water - reused, self.high_water + fresh, dtype=np.int64)
        rows[:reused] = recycled
        self.high_water += fresh
        return rows

    def release(self, rows: np.ndarray) -> None:
        """Make ``rows`` available again. They must be live and distinct."""
        needed = self._free_count + rows.size
        if needed > self._free.size:
            grown = np.empty(max(needed, 2 * self._free.size), np.int64)
            grown[: self._free_count] = self._free[: self._free_count]
            self._free = grown
        self._free[self._free_count : needed] = rows
        self._free_count = needed

    def clear(self) -> None:
        """Forget every row."""
        self.__init__()

    @property
    def nbytes(self) -> int:
        return self._free.nbytes

    def state(self) -> dict[str, np.ndarray]:
        """Small array state for checkpoints: the high-water mark and the free rows in order."""
        return {"high_water": np.array(self.high_water), "free": self._free[: self._free_count]}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore :meth:`state`."""
        self.clear()
        self.high_water = int(state["high_water"])
        self.release(np.asarray(state["free"], np.int64))

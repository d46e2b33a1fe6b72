"""``IdMap``: a growable hash map from int64 ids to row numbers.

Every int64 value is a valid key (no reserved ids). Rows are numbered densely from 0; the rows of
erased keys are reused by later inserts. The map grows by doubling when an insert would pass
``max_load``; an optional ``max_size`` turns growth past it into a :class:`TableFullError`.

>>> import numpy as np
>>> ids = IdMap(name="user")
>>> result = ids.find_or_insert(np.array([42, -1, 42]))
>>> result.rows.tolist(), result.is_new.tolist()
([0, 1, 0], [True, True, True])
>>> ids.find(np.array([-1, 7])).tolist()
[1, -1]
>>> ids.erase(np.array([42])).tolist()
[0]
>>> ids.find_or_insert(np.array([9])).rows.tolist()  # row 0 is reused
[0]
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from recis.core import interop
from recis.core.dedupe import unique_inverse
from recis.core.errors import TableFullError
from recis.core.kernels import id_map as kernels
from recis.core.row_allocator import RowAllocator

SLOT_BYTES = 16  # an int64 key and an int64 row


class Inserted(NamedTuple):
    """Result of :meth:`IdMap.find_or_insert`.

    ``rows[i]`` is the row of ``keys[i]``; ``is_new[i]`` tells whether that key was absent before
    the call; ``new_keys``/``new_rows`` list each inserted key once, in order of first occurrence.
    """

    rows: np.ndarray
    is_new: np.ndarray
    new_keys: np.ndarray
    new_rows: np.ndarray


class IdMap:
    """Open-addressing map int64 key → int64 row (see module docstring).

    Args:
        name: names the table in errors and stats.
        capacity: initial slot count (rounded up to a power of two).
        max_load: occupancy that triggers doubling; memory is ``16 / max_load`` bytes per key
            at that load (32 bytes at the default 0.5).
        max_size: optional cap on the number of keys.
    """

    def __init__(
        self,
        name: str = "table",
        capacity: int = 1024,
        max_load: float = 0.5,
        max_size: int | None = None,
    ) -> None:
        if not 0.0 < max_load < 1.0:
            raise ValueError(f"IdMap {name!r}: max_load must be in (0, 1), got {max_load}")
        if max_size is not None and max_size < 0:
            raise ValueError(f"IdMap {name!r}: max_size must be >= 0, got {max_size}")
        self.name = name
        self.max_load = max_load
        self.max_size = max_size
        self.rows = RowAllocator()
        self._initial_capacity = _power_of_two(capacity)
        self._reset_slots(self._initial_capacity)

    def _reset_slots(self, capacity: int) -> None:
        self._slots = np.zeros((capacity, 2), np.int64)
        self._shift = 64 - (capacity.bit_length() - 1)
        self._regions = kernels.region_count(capacity)
        self._zero_row = -1  # the key 0 lives outside the slots, which use 0 for "empty"
        self._size = 0

    def __len__(self) -> int:
        return self._size

    @property
    def capacity(self) -> int:
        """Number of slots."""
        return self._slots.shape[0]

    @property
    def load_factor(self) -> float:
        return self._size / self.capacity

    @property
    def nbytes(self) -> int:
        """Bytes held by the slots and the free-row list."""
        return self._slots.nbytes + self.rows.nbytes

    def stats(self) -> dict:
        """Size, capacity, load and memory, e.g. for sizing a table before training."""
        return {
            "name": self.name,
            "size": self._size,
            "capacity": self.capacity,
            "load_factor": self.load_factor,
            "bytes": self.nbytes,
            "bytes_per_key": self.nbytes / max(self._size, 1),
            "rows_high_water": self.rows.high_water,
            "rows_free": self.rows.num_free,
        }

    def find(self, keys: np.ndarray) -> np.ndarray:
        """Rows of ``keys`` (-1 where a key is missing); never inserts."""
        keys = _keys(keys)
        out = interop.empty(keys.size, np.int64)
        kernels.find(self._slots, self._shift, self._zero_row, keys, out)
        return out

    def find_or_insert(self, keys: np.ndarray) -> Inserted:
        """Rows of ``keys``, inserting missing keys with fresh or reused rows.

        New keys get rows in order of first occurrence in ``keys``. Raises
        :class:`TableFullError` (inserting nothing) if ``max_size`` would be exceeded.
        """
        keys = _keys(keys)
        rows = self.find(keys)
        is_new = rows < 0
        missing = np.flatnonzero(is_new)
        new_keys, inverse = unique_inverse(keys[missing])
        new_rows = self._insert_absent(new_keys)
        rows[missing] = new_rows[inverse]
        return Inserted(rows, is_new, new_keys, new_rows)

    def _insert_absent(self, keys: np.ndarray) -> np.ndarray:
        if self.max_size is not None and self._size + keys.size > self.max_size:
            raise TableFullError(
                f"table {self.name!r} is full: {self._size} ids + {keys.size} new > "
                f"max_size {self.max_size}; raise max_size or enable eviction"
            )
        self.reserve(self._size + keys.size)
        rows = self.rows.allocate(keys.size)
        nonzero = keys != 0
        if not nonzero.all():
            self._zero_row = int(rows[~nonzero][0])
        kernels.insert_new(self._slots, self._shift, keys[nonzero], rows[nonzero], self._regions)
        self._size += keys.size
        return rows

    def erase(self, keys: np.ndarray) -> np.ndarray:
        """Remove ``keys``; return the row each one had (-1 if absent). Rows become reusable."""
        keys = _keys(keys)
        keys, inverse = unique_inverse(keys)
        erased = interop.empty(keys.size, np.int64)
        nonzero = keys != 0
        if not nonzero.all():
            erased[~nonzero] = self._zero_row
            self._zero_row = -1
        erased_nonzero = erased[nonzero]
        kernels.erase(self._slots, self._shift, keys[nonzero], erased_nonzero)
        erased[nonzero] = erased_nonzero
        removed = erased[erased >= 0]
        self._size -= removed.size
        self.rows.release(removed)
        return erased[inverse]

    def export(self) -> tuple[np.ndarray, np.ndarray]:
        """All (keys, rows), in slot order."""
        live = self._slots[:, 0] != 0
        keys, rows = self._slots[live, 0], self._slots[live, 1]
        if self._zero_row >= 0:
            keys = np.append(keys, np.int64(0))
            rows = np.append(rows, np.int64(self._zero_row))
        return keys, rows

    def clear(self) -> None:
        """Remove every key and forget every row; capacity returns to its initial value."""
        self._reset_slots(self._initial_capacity)
        self.rows.clear()

    def reserve(self, size: int) -> None:
        """Grow (rehashing) so that ``size`` keys fit within ``max_load``."""
        capacity = self.capacity
        while size > capacity * self.max_load:
            capacity *= 2
        if capacity == self.capacity:
            return
        old_slots, zero_row, count = self._slots, self._zero_row, self._size
        self._reset_slots(capacity)
        kernels.rehash(old_slots, self._slots, self._shift, self._regions)
        self._zero_row, self._size = zero_row, count


def _keys(keys) -> np.ndarray:
    keys = np.asarray(keys)
    if keys.ndim != 1 or keys.dtype.kind not in "iu":
        raise TypeError(f"keys must be a 1-D integer array, got {keys.dtype}{list(keys.shape)}")
    return (
        np.ascontiguousarray(keys).view(np.int64) if keys.itemsize == 8 else keys.astype(np.int64)
    )


def _power_of_two(n: int) -> int:
    return 1 << max(4, (int(n) - 1).bit_length())

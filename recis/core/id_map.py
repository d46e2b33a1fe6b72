"""``IdMap``: a growable hash map from int64 ids to row numbers.

Every int64 value is a valid key (no reserved ids). Rows are numbered densely from 0; the rows of
erased keys are reused by later inserts. The map grows by doubling when an insert would pass
``max_load``; an optional ``max_size`` turns growth past it into a :class:`TableFullError`.

Keys may carry a *tag* in ``[0, 2**15)``: the logical table of a merged physical table. The pair
(key, tag) is the map's key, so merged tables keep their ids whole. Omitted tags are 0.

``IdMap(device="cuda")`` keeps its slots in a CuPy array and takes CuPy keys: the same algorithm
then runs the CUDA kernels of :mod:`recis.core.cuda.id_map` on CuPy's current stream, with results
bitwise equal to the CPU's (only the slot order of :meth:`IdMap.export` may differ). Rows come
from a :class:`~recis.core.cuda.row_allocator.DeviceRowAllocator`, so
:meth:`IdMap.find_or_insert` never waits for the device (the number of new keys stays there; see
:class:`Inserted`): when the host's bound of the map's size says a batch might not fit, the map
grows for the bound instead, and waits only to decide against ``max_size``. Waiting are also
:func:`len` and :meth:`IdMap.stats`, :meth:`IdMap.erase` and :meth:`IdMap.insert_new`.

>>> import numpy as np
>>> ids = IdMap(name="user")
>>> result = ids.find_or_insert(np.array([42, -1, 42]))
>>> result.rows.tolist(), result.is_new.tolist()
([0, 1, 0], [True, True, True])
>>> ids.find(np.array([-1, 7])).tolist()
[1, -1]
>>> ids.find(np.array([42]), tags=3).tolist()  # (42, tag 3) is another key
[-1]
>>> ids.erase(np.array([42])).tolist()
[0]
>>> ids.find_or_insert(np.array([9])).rows.tolist()  # row 0 is reused
[0]
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from recis.core import arrays as interop
from recis.core.arrays import array_module, int64_vector
from recis.core.cuda import id_map as cuda_kernels
from recis.core.cuda.loader import require_cupy
from recis.core.cuda.row_allocator import DeviceRowAllocator
from recis.core.dedupe import first_occurrences, tag_vector
from recis.core.errors import TableFullError
from recis.core.host_slots import HostSlots
from recis.core.kernels import batch_lookup as batch_kernels
from recis.core.kernels import id_map as kernels
from recis.core.row_allocator import RowAllocator

PAGE_SLOTS = 256  # slots in a 4 KiB page


class Inserted(NamedTuple):
    """Result of :meth:`IdMap.find_or_insert`.

    ``rows[i]`` is the row of key ``i``; ``is_new[i]`` tells whether that key was absent before
    the call; ``new_positions`` gives the position of each inserted key's first occurrence (in
    order), ``new_rows`` its row; ``count`` is how many keys were inserted.

    On the GPU ``count`` may be a 0-d device array; ``new_positions`` and ``new_rows`` then
    have one entry per key, those past ``count`` being padding (position 0, row -1).
    """

    rows: np.ndarray
    is_new: np.ndarray
    new_positions: np.ndarray
    new_rows: np.ndarray
    count: int


class BatchRows(NamedTuple):
    """Result of :meth:`IdMap.find_or_insert_batch`.

    The batch's distinct keys were first seen at ``positions`` (in order); ``index[i]`` is the
    number of key ``i``'s among them, ``rows[k]`` the row of distinct key ``k``, ``is_new[k]``
    whether it was inserted, and ``new_rows`` the inserted keys' rows, in order.
    """

    positions: np.ndarray
    index: np.ndarray
    rows: np.ndarray
    is_new: np.ndarray
    new_rows: np.ndarray


class Entries(NamedTuple):
    """Every entry of an :class:`IdMap`: parallel arrays of keys, tags and rows."""

    keys: np.ndarray
    tags: np.ndarray
    rows: np.ndarray


class IdMap:
    """Open-addressing map (int64 key, tag) → int64 row (see module docstring).

    Args:
        name: names the table in errors and stats.
        capacity: initial slot count (rounded up to a power of two).
        max_load: occupancy that triggers doubling; memory is ``16 / max_load`` bytes per key
            at that load (32 bytes at the default 0.5).
        max_size: optional cap on the number of keys.
        device: ``"cpu"`` (NumPy keys, numba kernels) or ``"cuda"`` (CuPy keys, CUDA kernels).
    """

    def __init__(
        self,
        name: str = "table",
        capacity: int = 1024,
        max_load: float = 0.5,
        max_size: int | None = None,
        device: str = "cpu",
    ) -> None:
        if not 0.0 < max_load < 1.0:
            raise ValueError(f"IdMap {name!r}: max_load must be in (0, 1), got {max_load}")
        if max_size is not None and max_size < 0:
            raise ValueError(f"IdMap {name!r}: max_size must be >= 0, got {max_size}")
        if device not in ("cpu", "cuda"):
            raise ValueError(f"IdMap {name!r}: device must be 'cpu' or 'cuda', got {device!r}")
        self.name = name
        self.device = device
        self._xp = np if device == "cpu" else require_cupy(f"IdMap {name!r} on cuda")
        self._kernels = kernels if device == "cpu" else cuda_kernels
        self.max_load = max_load
        self.max_size = max_size
        self.rows = RowAllocator() if device == "cpu" else DeviceRowAllocator()
        self._initial_capacity = _power_of_two(capacity)
        self._reset_slots(self._initial_capacity)

    def _reset_slots(self, capacity: int) -> None:
        if self._xp is np:
            self._host_slots = HostSlots(capacity)
            self._use_slots(self._host_slots.array)
        else:
            self._use_slots(self._xp.zeros((capacity, 2), np.int64))

    def _use_slots(self, slots) -> None:
        capacity = slots.shape[0]
        self._slots = slots
        self._shift = 65 - capacity.bit_length()
        self._regions = self._kernels.region_count(capacity)

    def __len__(self) -> int:
        return self.rows.num_live  # every key holds one row

    @property
    def capacity(self) -> int:
        """Number of slots."""
        return self._slots.shape[0]

    @property
    def load_factor(self) -> float:
        return len(self) / self.capacity

    @property
    def nbytes(self) -> int:
        """Bytes held by the slots and the free-row list."""
        return self._slots.nbytes + self.rows.nbytes

    @property
    def slot_bytes(self) -> int:
        """Bytes held by the slots (16 per slot: key and row, with the tag)."""
        return self._slots.nbytes

    def stats(self) -> dict:
        """Size, capacity, load and memory, e.g. for sizing a table before training."""
        size = len(self)
        return {
            "name": self.name,
            "size": size,
            "capacity": self.capacity,
            "load_factor": size / self.capacity,
            "bytes": self.nbytes,
            "bytes_per_key": self.nbytes / max(size, 1),
            "rows_high_water": self.rows.high_water,
            "rows_free": self.rows.num_free,
        }

    def _keys_and_tags(self, keys, tags, checked=False) -> tuple[np.ndarray, np.ndarray, int]:
        """``keys`` and ``tags`` as int64 arrays (and the tag stride) on this map's device."""
        keys = int64_vector(keys, "keys")
        if array_module(keys) is not self._xp:
            raise TypeError(
                f"IdMap {self.name!r} is on {self.device}: keys must be a "
                f"{self._xp.__name__} array, got {type(keys).__module__}.{type(keys).__name__}"
            )
        return (keys, *tag_vector(tags, keys.size, self._xp, checked))

    def find(self, keys: np.ndarray, tags=None) -> np.ndarray:
        """Rows of ``keys`` (-1 where a key is missing); never inserts."""
        keys, tag_array, stride = self._keys_and_tags(keys, tags)
        out = interop.empty(keys.size, np.int64, self._xp)
        self._kernels.find(self._slots, self._shift, keys, tag_array, stride, out)
        return out

    def find_or_insert(self, keys: np.ndarray, tags=None, *, tags_checked=False) -> Inserted:
        """Rows of ``keys``, inserting missing keys with fresh or reused rows.

        New keys get rows in order of first occurrence in ``keys``. Raises
        :class:`TableFullError` (inserting nothing) if ``max_size`` would be exceeded.
        ``tags_checked``: see :func:`recis.core.dedupe.tag_vector`.
        """
        keys, tag_array, stride = self._keys_and_tags(keys, tags, tags_checked)
        most = self.rows.live_bound() + keys.size  # if every key is new
        if self._xp is np and self._fits_max_size(most):
            return self._find_or_insert_growing(keys, tag_array, stride, most)
        if self._xp is not np and not self._fits(most) and self._fits_max_size(most):
            self.reserve(most)  # grow on the device rather than wait for the exact size
        if self._fits(most) or (
            self._xp is not np and self._fits(len(self) + keys.size)  # the bound was loose
        ):
            return self._find_or_insert_in_one_probe(keys, tag_array, stride)
        rows = self.find(keys, tag_array if stride else tags)
        is_new = rows < 0
        missing = self._xp.flatnonzero(is_new)
        missing_tags = tag_array[missing] if stride else tags
        first, inverse = first_occurrences(keys[missing], missing_tags)
        positions = missing[first]
        new_rows = self.insert_new(keys[positions], tag_array[positions] if stride else tags)
        rows[missing] = new_rows[inverse]
        return Inserted(rows, is_new, positions, new_rows, new_rows.size)

    def _find_or_insert_growing(self, keys, tags, stride, most: int) -> Inserted:
        """:meth:`find_or_insert` on the CPU, growing as needed: the keys go into the slots as
        they are while even ``most`` new keys would leave them at most halfway between
        ``max_load`` and full (longer probes for one batch), and the map grows afterwards if
        it passed ``max_load``. A batch that could fill the slots past that first counts its
        missing keys (an upper bound of its new ones) and grows for them."""
        if most > self.capacity * (1 + self.max_load) / 2:
            missing = self._xp.empty(keys.size, np.int64)
            self._kernels.find(self._slots, self._shift, keys, tags, stride, missing)
            self.reserve(len(self) + int(np.count_nonzero(missing < 0)))
        inserted = self._find_or_insert_in_one_probe(keys, tags, stride)
        self.reserve(len(self))
        return inserted

    def _fits(self, size: int) -> bool:
        """Whether ``size`` keys fit without growing or passing ``max_size``."""
        return size <= self.capacity * self.max_load and self._fits_max_size(size)

    def _fits_max_size(self, size: int) -> bool:
        return self.max_size is None or size <= self.max_size

    def _find_or_insert_in_one_probe(self, keys, tags, stride) -> Inserted:
        """:meth:`find_or_insert` when every key would fit without growing: each key is probed
        once, new keys take a placeholder, then get their rows (on the GPU, rows allocated on
        the device for a count the host never reads)."""
        xp, run, n = self._xp, self._kernels, keys.size
        rows = interop.empty(n, np.int64, xp)
        first = interop.empty(n, np.int64, xp)
        slot_of = xp.empty(n, np.int64)
        run.find_or_place(
            self._slots, self._shift, keys, tags, stride, self._regions, rows, first, slot_of
        )
        is_new = first >= 0
        if xp is np:
            positions = np.empty(n, np.int64)
            count = run.rank_first_occurrences(first, positions)
            positions, new_rows = positions[:count], self.rows.allocate(count)
        else:
            positions = xp.zeros(n, np.int64)
            count = run.rank_first_occurrences(first, positions)
            new_rows = self.rows.allocate_ranked(count, n)
        run.settle(self._slots, tags, stride, first, positions, slot_of, new_rows, rows)
        return Inserted(rows, is_new, positions, new_rows, count)

    def find_or_insert_batch(self, keys: np.ndarray, tags=None, *, tags_checked=False):
        """Deduplicate a batch of ``keys`` and find or insert its distinct keys, in one probe of
        the map per key (:mod:`recis.core.kernels.batch_lookup`); the map must be on the CPU.

        What :func:`~recis.core.dedupe.first_occurrences` followed by :meth:`find_or_insert`
        of the distinct keys gives, as :class:`BatchRows`; the map grows as
        :meth:`find_or_insert` grows it. Returns None (nothing done) where the batch might pass
        ``max_size``: the caller then takes that path, which inserts up to it or refuses.

        >>> ids = IdMap()
        >>> found = ids.find_or_insert_batch(np.array([5, 8, 5]))
        >>> found.positions.tolist(), found.index.tolist(), found.rows.tolist()
        ([0, 1], [0, 1, 0], [0, 1])
        """
        if self._xp is not np:
            raise TypeError(f"IdMap {self.name!r}: find_or_insert_batch runs on the CPU only")
        keys, tags, stride = self._keys_and_tags(keys, tags, tags_checked)
        n = keys.size
        most = self.rows.live_bound() + n  # if every key is new
        if not self._fits_max_size(most):
            return None
        if most > self.capacity * (1 + self.max_load) / 2:  # see _find_or_insert_growing
            missing = np.empty(n, np.int64)
            self._kernels.find(self._slots, self._shift, keys, tags, stride, missing)
            absent = np.flatnonzero(missing < 0)  # counted once each, as the distinct keys
            first, _ = first_occurrences(keys[absent], tags[absent] if stride else tags[0])
            self.reserve(len(self) + first.size)
        rows, leader, slot_of, positions, index = (interop.empty(n, np.int64) for _ in range(5))
        batch_kernels.find_or_mark(
            self._slots, self._shift, keys, tags, stride, self._regions, rows, leader, slot_of
        )
        positions = positions[: batch_kernels.rank_leaders(leader, positions, index)]
        distinct_rows = rows[positions]
        is_new = distinct_rows < 0
        new_rows = self.rows.allocate(int(np.count_nonzero(is_new)))
        distinct_rows[is_new] = new_rows
        batch_kernels.unmark(self._slots, tags, stride, positions, slot_of, distinct_rows)
        self.reserve(len(self))
        return BatchRows(positions, index, distinct_rows, is_new, new_rows)

    def insert_new(self, keys: np.ndarray, tags=None) -> np.ndarray:
        """Insert keys known to be absent and distinct; return their new rows.

        The caller guarantees both conditions (e.g. after :meth:`find` and deduplication);
        :meth:`find_or_insert` is the checked form. Raises :class:`TableFullError` (inserting
        nothing) if ``max_size`` would be exceeded.
        """
        keys, tags, stride = self._keys_and_tags(keys, tags)
        size = len(self)
        if self.max_size is not None and size + keys.size > self.max_size:
            raise TableFullError(
                f"table {self.name!r} is full: {size} ids + {keys.size} new > "
                f"max_size {self.max_size}; raise max_size or enable eviction"
            )
        self.reserve(size + keys.size)
        rows = self.rows.allocate(keys.size)
        self._kernels.insert_new(self._slots, self._shift, keys, tags, stride, rows, self._regions)
        return rows

    def erase(self, keys: np.ndarray, tags=None) -> np.ndarray:
        """Remove ``keys``; return the row each one had (-1 if absent). Rows become reusable."""
        keys, tag_array, stride = self._keys_and_tags(keys, tags)
        first, inverse = first_occurrences(keys, tag_array if stride else tags)
        erased = interop.empty(first.size, np.int64, self._xp)
        unique_keys, unique_tags = keys[first], tag_array[first * stride]
        self._kernels.erase(self._slots, self._shift, unique_keys, unique_tags, 1, erased)
        self.rows.release(erased[erased >= 0])
        return erased[inverse]

    def export(self) -> Entries:
        """All entries, in slot order, on the map's device."""
        live = self._slots[self._slots[:, 1] != 0]
        packed = live[:, 1] - 1
        return Entries(live[:, 0].copy(), packed >> kernels.ROW_BITS, packed & kernels.ROW_MASK)

    def load(self, entries: Entries, allocator_state: dict[str, np.ndarray]) -> None:
        """Replace the contents with ``entries`` (distinct keys, their exact rows) and the row
        allocator's state (see :meth:`RowAllocator.state`), e.g. from a checkpoint. Entries on
        the host are copied to the map's device."""
        xp, tags = self._xp, entries.tags
        if tags is not None and np.ndim(tags) > 0:
            tags = xp.asarray(tags)
        keys, tags, stride = self._keys_and_tags(xp.asarray(entries.keys), tags)
        rows = int64_vector(xp.asarray(entries.rows), "rows")
        self.clear()
        self.reserve(keys.size)
        self._kernels.insert_new(self._slots, self._shift, keys, tags, stride, rows, self._regions)
        self.rows.load_state(allocator_state)

    def clear(self) -> None:
        """Remove every key and forget every row; capacity returns to its initial value."""
        self._reset_slots(self._initial_capacity)
        self.rows.clear()

    def reserve(self, size: int) -> None:
        """Grow (rehashing) so that ``size`` keys fit within ``max_load``.

        On the CPU the slots grow in place (:class:`~recis.core.host_slots.HostSlots`: their
        memory is remapped, not copied) and are rehashed where they are, so growing never holds
        two slot arrays at once. On the GPU the entries move to a new, larger array.
        """
        capacity = self.capacity
        while size > capacity * self.max_load:
            capacity *= 2
        if capacity == self.capacity:
            return
        old_slots, old_capacity = self._slots, self.capacity
        if self._xp is np:
            del old_slots
            self._slots = None  # the slots' one view goes before they are remapped
            self._host_slots.grow(capacity)
            self._use_slots(self._host_slots.array)
            kernels.touch_pages(self._slots, old_capacity, PAGE_SLOTS)  # map them in parallel
            kernels.grow_in_place(self._slots, old_capacity, self._shift, self._regions)
        else:
            self._reset_slots(capacity)
            self._kernels.rehash(old_slots, self._slots, self._shift, self._regions)


def _power_of_two(n: int) -> int:
    return 1 << max(4, (int(n) - 1).bit_length())

"""The row allocator of a GPU table: :class:`DeviceRowAllocator`.

It hands out rows exactly as :class:`recis.core.row_allocator.RowAllocator` (released rows
first, newest first, then fresh rows from the high-water mark), but its state lives on the
device, so rows can be allocated for a number of new ids that only the device knows: nothing
waits. The host keeps upper bounds instead (:meth:`DeviceRowAllocator.high_water_bound`,
:meth:`DeviceRowAllocator.live_bound`): every allocation of at most ``n`` rows adds ``n`` to
them, and a :class:`~recis.core.cuda.host_mirror.HostMirror` of the device state brings them
back to the true values as the device catches up.

:func:`allocate_ranked` is the allocation itself, for NumPy or CuPy arrays:

>>> state = np.array([10, 2, 0])  # high-water mark, free rows, (rows requested)
>>> free = np.array([4, 7, -1])   # released rows; the last one released is used first
>>> allocate_ranked(np, state, free, np.array([3]), 5).tolist()
[7, 4, 10, -1, -1]
>>> state[:2].tolist()
[11, 0]
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

from recis.core.cuda import loader
from recis.core.cuda.host_mirror import HostMirror

HIGH_WATER, FREE, REQUESTED = range(3)
SOURCE = "row_allocator.cu"


def allocate_ranked(xp: ModuleType, state, free, count, n: int):
    """Rows for the ``count`` (a 0-d or one-element array) new ids of ranks ``0 .. count - 1``,
    as an int64 array of ``n >= count`` entries, -1 past ``count``; ``state`` (high-water mark,
    number of free rows, ...) and ``free`` (released rows) are updated in place, on their
    device. The NumPy reference of :meth:`DeviceRowAllocator.allocate_ranked`'s kernels."""
    rank = xp.arange(n, dtype=np.int64)
    high_water, free_count = state[HIGH_WATER : HIGH_WATER + 1], state[FREE : FREE + 1]
    count = count.reshape(-1)[:1].astype(np.int64)
    reused = xp.minimum(count, free_count)
    if free.size:
        recycled = free[xp.clip(free_count - 1 - rank, 0, free.size - 1)]
        rows = xp.where(rank < reused, recycled, high_water + rank - reused)
    else:  # nothing was ever released
        rows = high_water + rank
    rows = xp.where(rank < count, rows, -1)
    state[HIGH_WATER : HIGH_WATER + 1] += count - reused
    state[FREE : FREE + 1] -= reused
    return rows


class DeviceRowAllocator:
    """Row numbers for a table on the GPU (see the module docstring); the interface of
    :class:`~recis.core.row_allocator.RowAllocator`, plus :meth:`allocate_ranked` and bounds.

    Reading :attr:`high_water`, :attr:`num_free` or :attr:`num_live` waits for the device.
    """

    def __init__(self) -> None:
        self._cupy = loader.require_cupy("a row allocator on the GPU")
        self._mirror = HostMirror(3)
        self.clear()

    def clear(self) -> None:
        """Forget every row."""
        self._load(0, self._cupy.empty(0, np.int64), 0)

    def _load(self, high_water: int, free, free_count: int) -> None:
        """Set the state from the host, ``free[:free_count]`` being the released rows, once the
        device has finished with the old state (no publication of it is in flight)."""
        self._cupy.cuda.Device().synchronize()
        self._state = self._cupy.asarray(np.array([high_water, free_count, 0], np.int64))
        self._spare = self._cupy.empty(3, np.int64)  # the next state of allocate_in_kernel
        self._free = free
        self._requested = 0  # rows asked for since this load: the bounds' slack
        self._mirror.values[:] = [high_water, free_count, 0]

    def allocate_ranked(self, count, n: int):
        """Rows for ``count`` (a 0-d device array, at most ``n``) new ids, ``n`` long
        with -1 past ``count`` (:func:`allocate_ranked`, in the two kernels of
        ``cuda/row_allocator.cu``, the second also publishing the state); never waits."""
        cupy = self._cupy
        count = cupy.ascontiguousarray(count.reshape(-1)[:1], np.int64)
        rows = cupy.empty(n, np.int64)
        free = self._free
        args = (self._state, free, np.int64(free.size), count, np.int64(n), rows)
        loader.launch(loader.kernel(SOURCE, "allocate_ranked_rows"), n, args)
        self._requested += n
        commit = (self._state, count, np.int64(self._requested), self._mirror.address())
        loader.launch(loader.kernel(SOURCE, "allocate_ranked_commit"), 1, commit)
        return rows

    def allocate_in_kernel(self, n: int) -> tuple:
        """Arguments of a kernel that allocates rows for at most ``n`` new ids itself, as
        ``allocate_ranked_rows`` does, and writes the next state as ``allocate_ranked_commit``
        does, but to a second buffer: ``(state, next_state, free, free_size, requested,
        host)``. The allocator goes on from ``next_state``; never waits."""
        self._requested += n
        state, self._state, self._spare = self._state, self._spare, self._state
        free = self._free
        return (state, self._state, free, np.int64(free.size), np.int64(self._requested),
                self._mirror.address())  # fmt: skip

    def allocate(self, count: int):
        """``count`` rows (a CuPy array), as :meth:`RowAllocator.allocate`."""
        return self.allocate_ranked(self._cupy.full(1, count, np.int64), count)

    def _lag(self) -> tuple[int, np.ndarray]:
        """Rows requested since the state the mirror shows, and that state."""
        requested = int(self._mirror.values[REQUESTED])  # first: the others are at least as new
        return self._requested - requested, self._mirror.values[:REQUESTED].copy()

    def high_water_bound(self) -> int:
        """An upper bound of :attr:`high_water`, without waiting."""
        lag, (high_water, _) = self._lag()
        return int(high_water) + lag

    def live_bound(self) -> int:
        """An upper bound of :attr:`num_live`, without waiting (rows released since the last
        wait are not subtracted; :meth:`release` waits)."""
        lag, (high_water, free) = self._lag()
        return int(high_water - free) + lag

    def _exact(self) -> np.ndarray:
        """The state on the host, once the device has finished every queued allocation."""
        self._cupy.cuda.Device().synchronize()
        return self._cupy.asnumpy(self._state)

    @property
    def high_water(self) -> int:
        return int(self._exact()[HIGH_WATER])

    @property
    def num_free(self) -> int:
        return int(self._exact()[FREE])

    @property
    def num_live(self) -> int:
        state = self._exact()
        return int(state[HIGH_WATER] - state[FREE])

    def release(self, rows) -> None:
        """Make ``rows`` (live, distinct; on the device) available again; waits for it."""
        cupy = self._cupy
        high_water, free_count, _ = (int(v) for v in self._exact())
        needed = free_count + rows.size
        free = self._free
        if needed > free.size:
            free = cupy.empty(max(needed, 2 * free.size), np.int64)
            free[:free_count] = self._free[:free_count]
        free[free_count:needed] = cupy.asarray(rows, np.int64)
        self._load(high_water, free, needed)

    @property
    def nbytes(self) -> int:
        return self._free.nbytes + self._state.nbytes

    def state(self) -> dict[str, np.ndarray]:
        """As :meth:`RowAllocator.state` (host arrays); waits for the device."""
        high_water, free_count, _ = self._exact()
        free = self._cupy.asnumpy(self._free[:free_count])
        return {"high_water": np.array(high_water), "free": free}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore :meth:`state`."""
        free = self._cupy.asarray(np.asarray(state["free"], np.int64))
        self._load(int(state["high_water"]), free, free.size)

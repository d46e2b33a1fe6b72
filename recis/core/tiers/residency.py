"""``Residency``: which rows of a tiered table are in its hot tier, and which leave it next.

The hot tier has ``slots`` places for rows. Each row (numbered as in the table's id map) has a
usage score, kept by :meth:`Residency.touch` as :class:`~recis.core.policies.CapacityEviction`
keeps its own: ``"lru"`` the step of its last use, ``"lfu"`` its count of uses. When rows must
come in and no slot is free, the rows with the lowest scores go out (ties: lower rows first,
:func:`~recis.core.policies.lowest_scores`), never rows the caller protects, and at least a
sixteenth of the slots at a time, so that choosing them costs little per row. A Residency only
decides; :class:`~recis.core.tiers.store.TieredRowStore` moves the rows.

>>> import numpy as np
>>> residency = Residency(slots=2, policy="lru")
>>> residency.grow(8)
>>> residency.touch(np.array([3, 5]))
>>> residency.admit(np.array([3, 5]), protected=np.array([3, 5])).slots_in.tolist()
[0, 1]
>>> residency.touch(np.array([5]))  # row 3 is now the least recently used
>>> moves = residency.admit(np.array([6]), protected=np.array([6]))
>>> moves.rows_out.tolist(), moves.rows_in.tolist(), moves.slots_in.tolist()
([3], [6], [0])
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from recis.core.policies import lowest_scores

EMPTY = np.empty(0, np.int64)


def tracked_rows(num_rows: int) -> int:
    """The rows a Residency grown for ``num_rows`` rows keeps scores for: the least number
    ``m * 2**e`` with ``4 <= m <= 8`` that is at least ``num_rows``, so growth comes in steps of
    at most a quarter.

    >>> [tracked_rows(n) for n in (3, 8, 9, 1000, 1024, 1025)]
    [3, 8, 10, 1024, 1024, 1280]
    """
    if num_rows <= 8:
        return num_rows
    step = 1 << (num_rows.bit_length() - 3)
    return -(-num_rows // step) * step


class Moves(NamedTuple):
    """Rows to move: ``rows_out`` leave hot slots ``slots_out`` (first), then ``rows_in`` take
    hot slots ``slots_in``."""

    rows_out: np.ndarray
    slots_out: np.ndarray
    rows_in: np.ndarray
    slots_in: np.ndarray


class Residency:
    """The hot tier's ``slots`` and the rows' scores under ``policy`` (module docstring)."""

    def __init__(self, slots: int, policy: str = "lru") -> None:
        self.slots = slots
        self.policy = policy
        self.slot_of = np.full(0, -1, np.int32)  # per row: its hot slot (< 2**31), -1 if cold
        self.score = np.zeros(0, np.int64)  # per row
        self.owner = np.full(slots, -1, np.int64)  # per slot: its row, -1 if free
        self.used = 0  # slots handed out at least once: [0, used)
        self.clock = 0
        self.free = EMPTY  # slots in [0, used) without a row

    @property
    def num_hot(self) -> int:
        """Rows in the hot tier."""
        return self.used - self.free.size

    @property
    def nbytes(self) -> int:
        """Bytes of the bookkeeping arrays."""
        return self.slot_of.nbytes + self.score.nbytes + self.owner.nbytes + self.free.nbytes

    def grow(self, num_rows: int) -> None:
        """Make room for rows ``[0, num_rows)`` (new rows are cold, with score 0), and up to a
        quarter more: :func:`tracked_rows` of them, whatever the earlier sizes."""
        old = self.slot_of.size
        if num_rows <= old:
            return
        size = tracked_rows(num_rows)
        slot_of, score = np.full(size, -1, np.int32), np.zeros(size, np.int64)
        slot_of[:old], score[:old] = self.slot_of, self.score
        self.slot_of, self.score = slot_of, score

    def touch(self, rows: np.ndarray, counts=1) -> None:
        """Record a use of the distinct ``rows``, each ``counts`` times (for ``"lfu"``)."""
        if self.policy == "lru":
            self.clock += 1
            self.score[rows] = self.clock
        else:
            self.score[rows] += counts

    def restart(self, rows: np.ndarray) -> None:
        """Scores of ``rows`` given to new ids: as if never used."""
        self.score[rows] = self.clock if self.policy == "lru" else 0

    def admit(self, rows: np.ndarray, protected: np.ndarray) -> Moves:
        """Hot slots for the cold, distinct ``rows`` — all of them if enough rows not in
        ``protected`` can leave, else the first ones — and the rows that leave for them."""
        taken = [self._take_free(rows.size)]
        taken.append(self._take_unused(rows.size - taken[0].size))
        short = rows.size - taken[0].size - taken[1].size
        rows_out, slots_out = EMPTY, EMPTY
        if short > 0:
            rows_out, slots_out = self._push_out(short, protected)
            taken.append(slots_out[:short])
            self.free = np.concatenate([self.free, slots_out[short:]])
        slots_in = np.concatenate(taken)
        rows_in = rows[: slots_in.size]
        self.slot_of[rows_in] = slots_in
        self.owner[slots_in] = rows_in
        return Moves(rows_out, slots_out, rows_in, slots_in)

    def _take_free(self, count: int) -> np.ndarray:
        count = min(count, self.free.size)
        taken, self.free = self.free[self.free.size - count :], self.free[: self.free.size - count]
        return taken

    def _take_unused(self, count: int) -> np.ndarray:
        count = min(count, self.slots - self.used)
        self.used += count
        return np.arange(self.used - count, self.used, dtype=np.int64)

    def _push_out(self, short: int, protected: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Take the lowest-scored rows not ``protected`` out of their slots: ``short`` of them
        or a sixteenth of the slots, whichever is more (as many as there are, at most)."""
        owners = self.owner[: self.used]
        candidate = owners >= 0
        kept = self.slot_of[protected]
        candidate[kept[kept >= 0]] = False
        slots = np.flatnonzero(candidate)
        amount = min(slots.size, max(short, self.slots // 16))
        if amount == 0:
            return EMPTY, EMPTY
        rows = owners[slots]
        chosen = lowest_scores(self.score[rows], rows, amount)
        rows, slots = rows[chosen], slots[chosen]
        self.slot_of[rows] = -1
        self.owner[slots] = -1
        return rows, slots

    def push_out_all(self) -> tuple[np.ndarray, np.ndarray]:
        """Every hot row and its slot, which all become free (e.g. before the slots change)."""
        slots = np.flatnonzero(self.owner[: self.used] >= 0)
        rows = self.owner[slots]
        self.slot_of[rows] = -1
        self.owner[:] = -1
        self.used, self.free = 0, EMPTY
        return rows, slots

    def resize(self, slots: int) -> None:
        """Change the number of hot slots; the hot tier must be empty (:meth:`push_out_all`)."""
        if self.num_hot:
            raise RuntimeError("Residency.resize: push every row out first")
        self.slots = slots
        self.owner = np.full(slots, -1, np.int64)

    def clear(self) -> None:
        """Forget every row and score."""
        self.slot_of = np.full(0, -1, np.int32)
        self.score = np.zeros(0, np.int64)
        self.owner[:] = -1
        self.used, self.clock, self.free = 0, 0, EMPTY

"""``RowChanges``: which rows of a table were written, and which ids were erased, since a clock.

A table that is exported repeatedly (full, then deltas) keeps one of these
(:meth:`~recis.core.table.EmbeddingTable.track_changes`). Every write stamps the written rows with
the current clock value; :meth:`tick` returns the clock and advances it, so the rows written after
a tick are exactly those whose stamp is greater than the value it returned. Each row also remembers
its id and tag, so a delta reads only the changed rows, never the whole id map. Erased ids are
logged with the clock of their erasure until :meth:`forget` drops them.

The arrays live where the table's rows do (NumPy or CuPy); marking is one scatter per write.

>>> import numpy as np
>>> changes = RowChanges(np.array([10, 11]), np.array([0, 0], np.int8), np.array([0, 1]))
>>> first = changes.tick()
>>> changes.written(np.array([1]))
>>> changes.inserted(np.array([2]), np.array([12]), np.array([0], np.int8))
>>> changes.erased(np.array([10]), np.array([0], np.int8), np.array([0]))
>>> rows = changes.rows_since(first)
>>> rows.tolist(), changes.row_ids[rows].tolist(), changes.erased_since(first)[0].tolist()
([1, 2], [11, 12], [10])
"""

from __future__ import annotations

import secrets

import numpy as np

from recis.core.arrays import namespace


class ChangesForgottenError(RuntimeError):
    """The erasures asked for were already dropped by :meth:`RowChanges.forget`."""


class RowChanges:
    """Per-row write stamps, ids and tags of one table, and the log of erased ids.

    Args:
        ids, tags, rows: the table's entries when tracking starts (stamped 0: older than any
            clock value :meth:`tick` returns).
    """

    def __init__(self, ids, tags, rows) -> None:
        self.xp = namespace(ids)
        self.token = secrets.token_hex(8)  # tells this log from a later one of the same table
        self.clock = 1
        self.forgotten_through = 0
        size = int(rows.max()) + 1 if rows.size else 0
        self.stamps = self.xp.zeros(size, np.int64)
        self.row_ids = self.xp.zeros(size, np.int64)
        self.row_tags = self.xp.zeros(size, np.int8)
        self.row_ids[rows], self.row_tags[rows] = ids, tags
        self._erased: list[tuple[int, object, object]] = []

    def tick(self) -> int:
        """The current clock value, which every later write exceeds."""
        self.clock += 1
        return self.clock - 1

    def written(self, rows) -> None:
        """Stamp ``rows`` (row -1, padding, is skipped) as written now."""
        rows = rows[rows >= 0]
        self._grow(rows)
        self.stamps[rows] = self.clock

    def inserted(self, rows, ids, tags) -> None:
        """Stamp the new ``rows`` of ``ids`` (of logical tables ``tags``: an array or a scalar)."""
        keep = rows >= 0
        rows = rows[keep]
        self._grow(rows)
        self.stamps[rows] = self.clock
        self.row_ids[rows] = ids[keep]
        self.row_tags[rows] = tags[keep] if np.ndim(tags) else tags

    def erased(self, ids, tags, rows) -> None:
        """Log the erasure of ``ids`` (``rows``: theirs, -1 for ids that were absent)."""
        present = rows >= 0
        if not bool(present.any()):
            return
        self.stamps[rows[present]] = 0  # a reused row is stamped again when it is inserted
        tags = tags[present] if np.ndim(tags) else self.xp.full(int(present.sum()), tags or 0)
        self._erased.append((self.clock, ids[present].copy(), tags.astype(np.int8)))

    def rows_since(self, clock: int):
        """Rows written after :meth:`tick` returned ``clock``, ascending."""
        return self.xp.flatnonzero(self.stamps > clock)

    def erased_since(self, clock: int):
        """(ids, tags) erased after :meth:`tick` returned ``clock``, in order of erasure."""
        if clock < self.forgotten_through:
            raise ChangesForgottenError(
                f"erasures up to clock {self.forgotten_through} were forgotten; "
                f"those since {clock} are incomplete"
            )
        parts = [(ids, tags) for stamp, ids, tags in self._erased if stamp > clock]
        if not parts:
            return self.xp.zeros(0, np.int64), self.xp.zeros(0, np.int8)
        return self.xp.concatenate([p[0] for p in parts]), self.xp.concatenate(
            [p[1] for p in parts]
        )

    def forget(self, through: int) -> None:
        """Drop the erasures logged at or before clock ``through``."""
        self._erased = [entry for entry in self._erased if entry[0] > through]
        self.forgotten_through = max(self.forgotten_through, through)

    def _grow(self, rows) -> None:
        need = int(rows.max()) + 1 if rows.size else 0
        if need <= self.stamps.size:
            return
        size = max(need, 2 * self.stamps.size)
        self.stamps = _grown(self.xp, self.stamps, size)
        self.row_ids = _grown(self.xp, self.row_ids, size)
        self.row_tags = _grown(self.xp, self.row_tags, size)


def _grown(xp, array, size: int):
    out = xp.zeros(size, array.dtype)
    out[: array.size] = array
    return out

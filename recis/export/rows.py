"""``Rows``: one logical table's exported rows, and how deltas combine with them.

A full export holds every id of a table (ascending) with its encoded row; a delta holds the rows
written since an earlier export and the ids ``removed`` since (erased by eviction or a filter).
:func:`apply` replays a delta onto a full state: removed ids go first, then the delta's rows
replace or add theirs. :func:`diff` finds the delta between two full states by comparing the
stored bytes, for sources that do not record their changes (checkpoints).

>>> import numpy as np
>>> base = Rows(np.array([1, 2, 3]), np.array([[1.0], [2.0], [3.0]], np.float32))
>>> new = Rows(np.array([2, 4]), np.array([[5.0], [4.0]], np.float32))
>>> delta = diff(base, new)
>>> delta.ids.tolist(), delta.removed.tolist()
([2, 4], [1, 3])
>>> merged = apply(base, delta)
>>> merged.ids.tolist(), merged.values[:, 0].tolist()
([2, 4], [5.0, 4.0])
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def _no_ids() -> np.ndarray:
    return np.zeros(0, np.int64)


@dataclass
class Rows:
    """``ids`` (int64, ascending), their encoded ``values`` and int8 ``scale`` (else None), and
    for a delta the ids ``removed`` before these rows apply."""

    ids: np.ndarray
    values: np.ndarray
    scale: np.ndarray | None = None
    removed: np.ndarray = field(default_factory=_no_ids)

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, positions) -> Rows:
        """The rows at ``positions`` (no removals)."""
        scale = None if self.scale is None else self.scale[positions]
        return Rows(self.ids[positions], self.values[positions], scale)

    def sorted(self) -> Rows:
        """The same rows ordered by id."""
        order = np.argsort(self.ids, kind="stable")
        return Rows(self.ids[order], self.values[order], _take(self.scale, order), self.removed)

    def equals(self, other: Rows) -> bool:
        """Whether ids, stored bytes and scales agree exactly."""
        return (
            np.array_equal(self.ids, other.ids)
            and _bytes_equal(self.values, other.values)
            and (self.scale is None) == (other.scale is None)
            and (self.scale is None or _bytes_equal(self.scale, other.scale))
        )


def apply(state: Rows, delta: Rows) -> Rows:
    """``state`` (a full export's rows) after ``delta``."""
    keep = ~np.isin(state.ids, np.concatenate([delta.removed, delta.ids]))
    ids = np.concatenate([state.ids[keep], delta.ids])
    values = np.concatenate([state.values[keep], delta.values])
    scale = None if state.scale is None else np.concatenate([state.scale[keep], delta.scale])
    return Rows(ids, values, scale).sorted()


def diff(old: Rows, new: Rows) -> Rows:
    """The delta taking full state ``old`` to full state ``new``: rows that are new or whose
    stored bytes (or scale) differ, and the ids ``old`` has and ``new`` lacks."""
    position = np.searchsorted(old.ids, new.ids).clip(0, max(len(old) - 1, 0))
    known = (old.ids[position] == new.ids) if len(old) else np.zeros(len(new), bool)
    same = np.zeros(len(new), bool)
    same[known] = _rows_equal(old.values[position[known]], new.values[known])
    if new.scale is not None and known.any():
        same[known] &= _rows_equal(old.scale[position[known]], new.scale[known])
    delta = new.take(np.flatnonzero(~same))
    delta.removed = old.ids[~np.isin(old.ids, new.ids)]
    return delta


def _rows_equal(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per row, whether the bytes of ``a`` and ``b`` agree."""
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    if not len(a):
        return np.zeros(0, bool)
    words = a.reshape(len(a), -1).view(np.uint8) == b.reshape(len(b), -1).view(np.uint8)
    return words.all(axis=1)


def _bytes_equal(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and bool(_rows_equal(a, b).all())


def _take(array, positions):
    return None if array is None else array[positions]

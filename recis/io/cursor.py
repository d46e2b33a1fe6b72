"""The resume position of a reader: an index into the epoch's row stream, not data.

A worker reads its fragments (stripes or row groups) in a per-epoch order. Without the shuffle
buffer, the next row to deliver is row ``row`` of fragment ``fragment`` of that order. With it,
rows are permuted within consecutive windows; ``fragment``/``row`` then mark where window
``window`` starts and ``skip`` counts the rows of its permutation already delivered. Rebuilding a
window from its start and dropping ``skip`` rows reproduces the stream exactly.

>>> Cursor(epoch=1, fragment=3, row=10).advanced(5, by_row=True)
Cursor(epoch=1, fragment=3, row=15, window=0, skip=0)
>>> Cursor.from_dict(Cursor(epoch=2).to_dict())
Cursor(epoch=2, fragment=0, row=0, window=0, skip=0)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from numbers import Integral


@dataclass(frozen=True)
class Cursor:
    """Position of the next row to deliver (see the module docstring)."""

    epoch: int = 0
    fragment: int = 0
    row: int = 0
    window: int = 0
    skip: int = 0

    def advanced(self, rows: int, by_row: bool) -> Cursor:
        """The cursor ``rows`` rows further: in ``row`` (plain stream) or in ``skip`` (window)."""
        if by_row:
            return replace(self, row=self.row + rows)
        return replace(self, skip=self.skip + rows)

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, state: dict) -> Cursor:
        """Read a cursor written by :meth:`to_dict`; raises ``ValueError`` naming a bad key."""
        values = {}
        for field in fields(cls):
            value = state.get(field.name)
            if isinstance(value, bool) or not isinstance(value, Integral) or value < 0:
                raise ValueError(f"state[{field.name!r}]: expected an integer >= 0, got {value!r}")
            values[field.name] = int(value)
        return cls(**values)

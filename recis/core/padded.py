"""``Padded``: dense ids with a mask, the other input form of a variable-length feature.

Besides :class:`~recis.core.ragged.Ragged`, a feature with up to ``k`` ids per sample can come
as a dense ``[B, ..., k]`` array of ids plus a mask of the same shape (True: a real id, False:
padding). Padding takes no part in a lookup: it inserts nothing, gets no gradient, and does not
count in a combiner's mean. A feature whose option declares a ``padding_id`` treats dense ids
equal to it the same way, without a mask. The parts are NumPy arrays, or CuPy arrays for a
feature on the GPU (any array with ``__dlpack__`` is imported as such).

>>> import numpy as np
>>> value = Padded(np.array([[3, 0], [5, 6]]), np.array([[True, False], [True, True]]))
>>> value.shape, kept_ids(value.ids, value.mask).tolist()
((2, 2), [3, 5, 6])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from recis.core.arrays import array_module


@dataclass(frozen=True)
class Padded:
    """Dense ``ids`` ``[B, ..., k]`` and a boolean ``mask`` of the same shape (True: an id)."""

    ids: Any
    mask: Any

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(np.shape(self.ids))


def kept_ids(ids, keep):
    """The ids where ``keep`` is true, in row-major order (flat, int64)."""
    xp = array_module(ids)
    return xp.ascontiguousarray(ids).reshape(-1)[keep.reshape(-1)].astype(np.int64, copy=False)

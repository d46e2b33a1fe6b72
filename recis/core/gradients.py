"""``GradientBuffer``: the gradients a table's rows received since the last optimizer step.

Lookups add (rows, gradients) pairs as backward passes run; the optimizer takes them summed per
row. Rows of -1 (ids that were looked up but not stored, e.g. refused by admission) are dropped.
CuPy pieces stay on the GPU and are summed there (:func:`recis.core.cuda.segment.sum_by_row`),
with the same sums; so that nothing waits for the device, the result then keeps its size and
rows of -1 stand for dropped entries (see :meth:`GradientBuffer.summed`).

>>> import numpy as np
>>> buffer = GradientBuffer(dim=2)
>>> buffer.add(np.array([3, -1, 3]), np.ones((3, 2), np.float32))
>>> rows, grads = buffer.summed(divisor=1)
>>> rows.tolist(), grads.tolist()
([3], [[2.0, 2.0]])
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

from recis.core.arrays import array_module
from recis.core.dedupe import sum_by_index, unique_inverse


class GradientBuffer:
    """Collects per-row gradients ``[n, dim]`` (float32) until they are summed and cleared."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._rows: list[np.ndarray] = []
        self._grads: list[np.ndarray] = []
        self._distinct = True  # no row repeats, within or across the pieces added so far
        self._xp = np  # the array module of the pieces: numpy, or cupy once one is on the GPU

    def __bool__(self) -> bool:
        return bool(self._rows)

    def add(self, rows: np.ndarray, grads: np.ndarray, distinct: bool = False) -> None:
        """Record ``grads[i]`` for ``rows[i]``; rows of -1 are dropped.

        ``distinct=True`` promises that ``rows`` has no repeats (as after a deduplicated
        lookup), which lets a lone piece skip the summation.
        """
        xp = _namespace_of(rows, grads)
        if self._rows and xp is not self._xp:
            raise ValueError("gradients must stay on one device: NumPy and CuPy pieces were mixed")
        rows = xp.asarray(rows, np.int64)
        grads = xp.asarray(grads, np.float32)
        if grads.shape != (rows.size, self.dim):
            raise ValueError(
                f"gradients must be [{rows.size}, {self.dim}], got {list(grads.shape)}"
            )
        if xp is np:
            kept = rows >= 0
            if not kept.all():
                rows, grads = rows[kept], grads[kept]
        self._distinct = distinct and not self._rows
        self._xp = xp
        self._rows.append(rows)
        self._grads.append(grads)

    def summed(self, divisor: int, read_only: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Distinct rows (in order of first gradient) and their summed gradients / ``divisor``.

        The gradients are a new array, except with ``read_only`` (the caller only reads them):
        then one distinct piece divided by 1 is the array recorded, uncopied.
        On the GPU the arrays are as long as the gradients recorded, not as the distinct rows:
        the entries of row -1 among them are to be ignored (rows that were dropped, padding).
        """
        if self._xp is not np:
            return self._summed_on_gpu(divisor)
        if self._distinct and len(self._rows) == 1:
            if read_only and divisor == 1:
                return self._rows[0], np.ascontiguousarray(self._grads[0])
            return self._rows[0], self._grads[0] / np.float32(divisor)
        rows = np.concatenate(self._rows) if self._rows else np.empty(0, np.int64)
        grads = np.concatenate(self._grads) if self._grads else np.empty((0, self.dim), np.float32)
        unique_rows, inverse = unique_inverse(rows)
        summed = sum_by_index(grads, inverse, unique_rows.size)
        if divisor != 1:
            summed /= np.float32(divisor)
        return unique_rows, summed

    def summed_on_device(self):
        """:meth:`summed` of CuPy pieces without the division (``divisor`` 1), and without a
        copy when one distinct piece was recorded: the arrays are only to be read."""
        if self._distinct and len(self._rows) == 1:
            return self._rows[0], self._grads[0]
        return self._summed_on_gpu(1)

    def _summed_on_gpu(self, divisor: int):
        """:meth:`summed` of CuPy pieces, rows of -1 kept in place of dropped ones."""
        cupy = self._xp
        if self._distinct and len(self._rows) == 1:
            return self._rows[0], self._grads[0] / np.float32(divisor)
        from recis.core.cuda.segment import sum_by_row

        return sum_by_row(cupy.concatenate(self._rows), cupy.concatenate(self._grads), divisor)

    def all_finite(self) -> bool:
        """Whether every recorded gradient is finite (no NaN or infinity); on the GPU this
        waits for the device (see :meth:`finite_flag` for a flag that does not)."""
        return bool(self.finite_flag())

    def finite_flag(self):
        """A 0-d boolean array, on the gradients' device, that is True when every recorded
        gradient is finite (rows -1, padding, ignored); reading it waits for the device."""
        xp = self._xp
        flag = xp.asarray(True)
        for rows, grads in zip(self._rows, self._grads, strict=True):
            if xp is np and np.isfinite(grads).all():
                continue  # the common case, checked in one flat pass (10x faster than per row)
            flag = flag & (xp.isfinite(grads).all(axis=1) | (xp.asarray(rows) < 0)).all()
        return xp.asarray(flag)

    def scale(self, factor: float) -> None:
        """Multiply every recorded gradient by ``factor`` (e.g. to undo loss scaling)."""
        with np.errstate(invalid="ignore", over="ignore"):  # overflowed steps are skipped later
            self._grads = [grads * np.float32(factor) for grads in self._grads]

    def clear(self) -> None:
        self._rows.clear()
        self._grads.clear()
        self._distinct = True


def _namespace_of(rows, grads) -> ModuleType:
    """cupy if either array is a CuPy array, else numpy (lists and NumPy arrays)."""
    xp = array_module(rows)
    return xp if xp is not np else array_module(grads)

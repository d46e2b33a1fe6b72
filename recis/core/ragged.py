"""Ragged arrays: flat values split into rows by one or more levels of offsets.

A ragged array with ``k`` offset levels is the engine's form of a variable-length feature column
(``k = 1``: a list of ids per sample; ``k = 2``: a list of lists, e.g. a sequence of id lists).
Level ``j``'s offsets index the rows of level ``j + 1``; the last level indexes ``values``.

The parts are NumPy arrays, or CuPy arrays (all of them) for a column on the GPU. CuPy offsets are
checked for shape and dtype only: checking their values would wait for the device.

>>> r = Ragged(np.array([1, 2, 3]), np.array([0, 2, 2, 3]))
>>> r.row_lengths().tolist()
[2, 0, 1]
>>> r.to_dense().tolist()
[[1, 2], [0, 0], [3, 0]]
"""

from __future__ import annotations

from collections.abc import Sequence

import ml_dtypes
import numpy as np

from recis.core.arrays import array_module, empty
from recis.core.kernels.ragged import scatter_rows

_EXTRA_VALUE_DTYPES = frozenset(np.dtype(t) for t in (ml_dtypes.bfloat16,))


class Ragged:
    """A ragged array: ``values`` (1-D), ``offsets`` (int64, outermost level first), ``weights``.

    ``weights`` is None or a float32 array with one weight per value. The arrays are held, not
    copied (integer offsets of another width are converted to int64). Raises ``TypeError`` or
    ``ValueError`` naming the offending argument when the parts do not fit together.

    >>> r = Ragged(np.array([5, 6, 7]), (np.array([0, 2]), np.array([0, 1, 3])))
    >>> r.num_rows, r.ragged_rank, r.row_lengths(0).tolist(), r.row_lengths(1).tolist()
    (1, 2, [2], [1, 2])
    >>> Ragged(np.array([1, 2]), np.array([0, 3]))
    Traceback (most recent call last):
    ...
    ValueError: offsets[0]: last offset 3 must equal the number of values (2)
    """

    __slots__ = ("_offsets", "_values", "_weights")

    def __init__(self, values: np.ndarray, offsets, weights: np.ndarray | None = None) -> None:
        self._values = _check_values(values)
        self._offsets = _check_offset_levels(offsets, len(self._values))
        self._weights = _check_weights(weights, len(self._values))
        _check_one_device(self._values, self._offsets, self._weights)

    @property
    def values(self) -> np.ndarray:
        return self._values

    @property
    def offsets(self) -> tuple[np.ndarray, ...]:
        return self._offsets

    @property
    def weights(self) -> np.ndarray | None:
        return self._weights

    @property
    def num_rows(self) -> int:
        """Number of rows of the outermost level (the batch size)."""
        return len(self._offsets[0]) - 1

    @property
    def ragged_rank(self) -> int:
        """Number of offset levels."""
        return len(self._offsets)

    def row_lengths(self, level: int = -1) -> np.ndarray:
        """Length of every row of offset level ``level`` (default: the innermost level)."""
        offsets = self._offsets[level]
        return offsets[1:] - offsets[:-1]

    def max_length(self, level: int = -1) -> int:
        """Length of the longest row of offset level ``level`` (0 when there are no rows)."""
        lengths = self.row_lengths(level)
        return int(lengths.max()) if len(lengths) else 0

    def with_values(self, values: np.ndarray) -> Ragged:
        """The same rows and weights holding new ``values`` (same length, any dtype).

        >>> Ragged(np.array([1, 2]), np.array([0, 1, 2])).with_values(np.array([.5, .25])).values
        array([0.5 , 0.25])
        """
        values = _check_values(values)
        if len(values) != len(self._values):
            raise ValueError(f"values: expected {len(self._values)} values, got {len(values)}")
        return Ragged(values, self._offsets, self._weights)

    def to_dense(self, default=0, shape: Sequence[int | None] | None = None) -> np.ndarray:
        """Pad to a dense array of shape ``[num_rows, L_1, ..., L_k]`` filled with ``default``.

        ``L_j`` is the longest row of level ``j - 1``, or ``shape[j]`` where ``shape`` (one entry
        per dimension) gives it; None or -1 keeps the longest row. A row longer than its given
        size is a ``ValueError``. ``weights`` are not part of the result.

        >>> r = Ragged(np.array([1, 2, 3]), (np.array([0, 1, 2]), np.array([0, 2, 3])))
        >>> r.to_dense(default=-1, shape=(None, 2, 3)).tolist()
        [[[1, 2, -1], [-1, -1, -1]], [[3, -1, -1], [-1, -1, -1]]]
        """
        dims = self._dense_dims(shape)
        xp = array_module(self._values)
        out = empty(dims, self._values.dtype, xp)
        out[...] = default
        if xp is not np:
            _scatter_on_device(xp, self, dims, out)
            return out
        slots = np.arange(self.num_rows, dtype=np.int64)
        for level_offsets, width in zip(self._offsets[:-1], dims[1:-1], strict=True):
            slots = _child_slots(slots, level_offsets, width)
        bits = np.dtype(f"u{self._values.dtype.itemsize}")
        rows_out = out.reshape(int(np.prod(dims[:-1])), dims[-1]).view(bits)
        scatter_rows(self._values.view(bits), self._offsets[-1], slots, rows_out)
        return out

    @classmethod
    def from_dense(cls, dense: np.ndarray, lengths=None, pad_value=0) -> Ragged:
        """Rows of a padded ``[B, L_1, ..., L_k]`` array as a ragged array with ``k`` levels.

        ``lengths`` gives the row lengths, one integer array per level with the shape of
        ``dense.shape[:j + 1]`` for level ``j`` (a single array for 2-D input); entries of rows
        cut away by an outer level are ignored. Without ``lengths``, every innermost row ends at
        its last element that differs from ``pad_value`` and every outer row at its last non-empty
        child row: trailing padding is stripped, inner padding kept.

        >>> Ragged.from_dense(np.array([[1, 0, 3, 0], [0, 0, 0, 0]])).offsets
        (array([0, 3, 3]),)
        >>> Ragged.from_dense(np.array([[1, 0], [2, 3]]), lengths=np.array([2, 1])).values
        array([1, 0, 2])
        """
        if not isinstance(dense, np.ndarray) or dense.ndim < 2:
            raise TypeError("dense: expected a NumPy array with at least 2 dimensions")
        if lengths is None:
            lengths = _trailing_lengths(dense != pad_value)
        else:
            lengths = _check_dense_lengths(lengths, dense.shape)
        offsets, kept = _offsets_and_kept_elements(lengths, dense.shape)
        return cls(dense[kept], offsets)

    def _dense_dims(self, shape) -> tuple[int, ...]:
        natural = (self.num_rows, *(self.max_length(level) for level in range(self.ragged_rank)))
        if shape is None:
            return natural
        if len(shape) != len(natural):
            raise ValueError(f"shape: expected {len(natural)} dimensions, got {len(shape)}")
        dims = tuple(
            n if s is None or s == -1 else int(s) for s, n in zip(shape, natural, strict=True)
        )
        if dims[0] != self.num_rows:
            raise ValueError(f"shape: dimension 0 is {dims[0]}, but there are {self.num_rows} rows")
        for axis, (size, longest) in enumerate(zip(dims[1:], natural[1:], strict=True), start=1):
            if size < longest:
                raise ValueError(
                    f"shape: a row of length {longest} exceeds dimension {axis} ({size})"
                )
        return dims

    def __repr__(self) -> str:
        weights = "" if self._weights is None else f", weights={self._weights!r}"
        return f"Ragged(values={self._values!r}, offsets={self._offsets!r}{weights})"


def as_offsets(offsets, num_items: int, name: str = "offsets", items: str = "items") -> np.ndarray:
    """Validate one level of offsets over ``num_items`` items and return it as int64.

    Offsets are a 1-D integer array that starts at 0, never decreases and ends at ``num_items``.
    ``name`` and ``items`` (what the offsets index) appear in error messages. CuPy offsets are
    checked for shape and dtype only (their values are on the device).

    >>> as_offsets(np.array([0, 2, 1], dtype=np.int32), 1)
    Traceback (most recent call last):
    ...
    ValueError: offsets: offsets must be non-decreasing
    """
    if not _is_array(offsets) or offsets.ndim != 1 or offsets.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected a 1-D integer NumPy array (or CuPy array)")
    if not isinstance(offsets, np.ndarray):
        if len(offsets) == 0:
            raise ValueError(f"{name}: offsets must start with 0, got no offsets")
        return offsets.astype(np.int64, copy=False)
    if len(offsets) == 0 or offsets[0] != 0:
        raise ValueError(f"{name}: offsets must start with 0")
    offsets = offsets.astype(np.int64, copy=False)
    if np.any(offsets[1:] < offsets[:-1]):
        raise ValueError(f"{name}: offsets must be non-decreasing")
    if offsets[-1] != num_items:
        raise ValueError(
            f"{name}: last offset {offsets[-1]} must equal the number of {items} ({num_items})"
        )
    return offsets


def _is_array(array) -> bool:
    """Whether ``array`` is a NumPy or a CuPy array."""
    return isinstance(array, np.ndarray) or array_module(array) is not np


def _check_values(values) -> np.ndarray:
    if not _is_array(values) or values.ndim != 1:
        raise TypeError("values: expected a 1-D NumPy array or CuPy array")
    if values.dtype.kind not in "biuf" and values.dtype not in _EXTRA_VALUE_DTYPES:
        raise TypeError(f"values: expected a numeric dtype, got {values.dtype}")
    return values


def _check_offset_levels(offsets, num_values: int) -> tuple[np.ndarray, ...]:
    if not (_is_array(offsets) or isinstance(offsets, tuple | list)):
        raise TypeError(
            "offsets: expected an integer NumPy array or a sequence of them (or CuPy arrays)"
        )
    levels = (offsets,) if _is_array(offsets) else tuple(offsets)
    if not levels:
        raise ValueError("offsets: expected at least one level")
    checked = [as_offsets(levels[-1], num_values, f"offsets[{len(levels) - 1}]", "values")]
    for level in range(len(levels) - 2, -1, -1):
        inner = f"rows of offsets[{level + 1}]"
        num_inner_rows = len(checked[0]) - 1
        checked.insert(0, as_offsets(levels[level], num_inner_rows, f"offsets[{level}]", inner))
    return tuple(checked)


def _check_weights(weights, num_values: int) -> np.ndarray | None:
    if weights is None:
        return None
    if not _is_array(weights) or weights.ndim != 1 or weights.dtype != np.float32:
        raise TypeError("weights: expected a 1-D float32 NumPy array or CuPy array")
    if len(weights) != num_values:
        raise ValueError(
            f"weights: expected {num_values} weights (one per value), got {len(weights)}"
        )
    return weights


def _check_one_device(values, offsets: tuple, weights) -> None:
    xp = array_module(values)
    parts = [("offsets", o) for o in offsets] + [("weights", weights)] * (weights is not None)
    for name, array in parts:
        if array_module(array) is not xp:
            raise TypeError(
                f"{name}: expected a {xp.__name__} array like the values, got "
                f"{type(array).__module__}.{type(array).__name__}"
            )


def _scatter_on_device(xp, ragged: Ragged, dims: tuple[int, ...], out) -> None:
    """:meth:`Ragged.to_dense` on the GPU: each value goes to its row's slot of ``out``, the
    slots found level by level from each row's parent (searches instead of repeats)."""
    if not len(ragged.values):
        return
    slots = xp.arange(ragged.num_rows, dtype=np.int64)
    levels = ragged.offsets
    for level, width in enumerate(dims[1:-1]):
        parent, index = _parents(xp, levels[level], len(levels[level + 1]) - 1)
        slots = slots[parent] * width + index
    parent, index = _parents(xp, levels[-1], len(ragged.values))
    out.reshape(-1, dims[-1])[slots[parent], index] = ragged.values


def _parents(xp, offsets, count: int):
    """For each of the ``count`` items that ``offsets`` splits: its row and its place in it."""
    items = xp.arange(count, dtype=np.int64)
    parent = xp.searchsorted(offsets, items, side="right") - 1
    return parent, items - offsets[parent]


def _child_slots(slots: np.ndarray, offsets: np.ndarray, width: int) -> np.ndarray:
    """Dense slot of every child row, given the slots of the parent rows and the child width."""
    first_child_slots = slots * width - offsets[:-1]
    return np.repeat(first_child_slots, np.diff(offsets)) + np.arange(offsets[-1])


def _offsets_and_kept_elements(lengths, shape) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """Offsets of every level, and the mask of the dense elements inside a row at every level."""
    kept = np.ones(shape[:1], dtype=bool)
    offsets = []
    for level, level_lengths in enumerate(lengths):
        kept_lengths = level_lengths[kept]
        width = shape[level + 1]
        if np.any(kept_lengths < 0) or np.any(kept_lengths > width):
            raise ValueError(f"lengths[{level}]: lengths must lie in [0, {width}]")
        offsets.append(_offsets_from_lengths(kept_lengths))
        kept = kept[..., None] & (np.arange(width) < level_lengths[..., None])
    return tuple(offsets), kept


def _offsets_from_lengths(lengths: np.ndarray) -> np.ndarray:
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets


def _trailing_lengths(present: np.ndarray) -> list[np.ndarray]:
    """Per level, every row's length up to its last present element (innermost: ``present``)."""
    lengths = []
    for _ in range(present.ndim - 1):
        level_lengths = _length_to_last_true(present)
        lengths.insert(0, level_lengths)
        present = level_lengths > 0
    return lengths


def _length_to_last_true(flags: np.ndarray) -> np.ndarray:
    width = flags.shape[-1]
    if width == 0:
        return np.zeros(flags.shape[:-1], dtype=np.int64)
    from_end = np.argmax(flags[..., ::-1], axis=-1)
    return np.where(flags.any(axis=-1), width - from_end, 0).astype(np.int64)


def _check_dense_lengths(lengths, shape: tuple[int, ...]) -> list[np.ndarray]:
    levels = [lengths] if isinstance(lengths, np.ndarray) else list(lengths)
    if len(levels) != len(shape) - 1:
        raise ValueError(f"lengths: expected {len(shape) - 1} levels, got {len(levels)}")
    for level, level_lengths in enumerate(levels):
        name = f"lengths[{level}]"
        if not isinstance(level_lengths, np.ndarray) or level_lengths.dtype.kind not in "iu":
            raise TypeError(f"{name}: expected an integer NumPy array")
        if level_lengths.shape != shape[: level + 1]:
            raise ValueError(
                f"{name}: expected shape {shape[: level + 1]}, got {level_lengths.shape}"
            )
    return levels

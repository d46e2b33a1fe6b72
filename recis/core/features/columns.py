"""Feature columns and the plumbing shared by the fused feature ops.

A column is a dense array or a :class:`~recis.core.ragged.Ragged`, on the CPU (NumPy) or the GPU
(CuPy). A value-wise op (mod, bucketize, multi-hash) maps a column's flat values and keeps its
structure: the shape of a dense array; the offsets and weights of a Ragged. Fused ops group
their columns by array namespace and hand each group to one kernel call: the numba kernels take
one ``numba.typed.List`` of arrays per argument, their GPU twins
(:mod:`recis.core.cuda.features`) plain lists of CuPy arrays.

>>> column = Ragged(np.array([4, 5, 6]), np.array([0, 1, 3]))
>>> with_values(column, flat_values(column) * 2).values.tolist()
[8, 10, 12]
>>> group_indices(["a", "b", "a"])
{'a': [0, 2], 'b': [1]}
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from types import ModuleType

import numba
import numpy as np

from recis.core import arrays as interop
from recis.core.cuda import features as gpu_kernels
from recis.core.ragged import Ragged

Column = np.ndarray | Ragged


def namespace_of(column: Column, name: str = "column") -> ModuleType:
    """``numpy`` or ``cupy``: the module of ``column``'s arrays.

    >>> namespace_of(Ragged(np.array([4]), np.array([0, 1]))).__name__
    'numpy'
    """
    array = column.values if isinstance(column, Ragged) else column
    try:
        return interop.namespace(array)
    except TypeError:
        raise TypeError(
            f"{name}: expected a NumPy or CuPy array or a Ragged, got {type(column).__name__}"
        ) from None


def flat_values(column: Column, name: str = "column") -> np.ndarray:
    """The values of ``column`` as one contiguous 1-D array (a view where possible)."""
    xp = namespace_of(column, name)
    if isinstance(column, Ragged):
        return xp.ascontiguousarray(column.values)
    return xp.ascontiguousarray(column).reshape(-1)


def contiguous(array):
    """``array`` (NumPy or CuPy) as a C-contiguous array; None stays None."""
    return None if array is None else interop.namespace(array).ascontiguousarray(array)


def run_fused(xp: ModuleType, cpu_kernel: Callable, gpu_name: str, *args) -> None:
    """Call a fused kernel on ``xp``'s arrays: ``cpu_kernel`` (list arguments as typed Lists)
    for NumPy, its GPU twin ``gpu_name`` in :mod:`recis.core.cuda.features` for CuPy."""
    if xp is np:
        cpu_kernel(*(typed_list(a) if isinstance(a, list) else a for a in args))
    else:
        getattr(gpu_kernels, gpu_name)(*args)


def with_values(column: Column, values: np.ndarray) -> Column:
    """``column``'s structure holding new flat ``values`` (one per old value)."""
    if isinstance(column, Ragged):
        return column.with_values(values)
    return values.reshape(column.shape)


def as_ragged(column, name: str = "column") -> Ragged:
    """``column`` itself, checked to be a Ragged."""
    if not isinstance(column, Ragged):
        raise TypeError(f"{name}: expected a Ragged, got {type(column).__name__}")
    return column


def check_dtype(values: np.ndarray, kinds: str, name: str, expected: str) -> None:
    """Raise ``TypeError`` unless ``values.dtype.kind`` is one of ``kinds``."""
    if values.dtype.kind not in kinds:
        raise TypeError(f"{name}: expected {expected} values, got {values.dtype}")


def require_dtype(values: np.ndarray, dtype, name: str) -> np.ndarray:
    """``values``, or ``TypeError`` unless their dtype is ``dtype``."""
    if values.dtype != dtype:
        raise TypeError(f"{name}: expected {np.dtype(dtype)} values, got {values.dtype}")
    return values


def check_count(name: str, params: Sequence, count: int) -> None:
    """Raise ``ValueError`` unless there is one parameter per column."""
    if len(params) != count:
        raise ValueError(f"{name}: expected one entry per column ({count}), got {len(params)}")


def labels_for(count: int, labels: Sequence[str] | None) -> Sequence[str]:
    """Names of the columns in error messages: ``labels`` or ``columns[i]``."""
    return [f"columns[{i}]" for i in range(count)] if labels is None else labels


def typed_list(arrays: Sequence[np.ndarray]) -> numba.typed.List:
    """A ``numba.typed.List`` of the arrays, made contiguous and writeable (one numba type).

    Arrays that already are (all outputs) are held, not copied.
    """
    return numba.typed.List([_kernel_array(a) for a in arrays])


def _kernel_array(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array)
    return array if array.flags.writeable else array.copy()


def group_indices(keys: Sequence[Hashable]) -> dict[Hashable, list[int]]:
    """Positions of equal keys, in order of first occurrence."""
    groups: dict[Hashable, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    return groups


def no_weights() -> np.ndarray:
    """The empty float32 array that stands for "every value weighs 1" in kernel arguments."""
    return np.empty(0, np.float32)


def weights_or_empty(ragged: Ragged) -> np.ndarray:
    """``ragged.weights`` (contiguous), or the empty array when it has none."""
    return no_weights() if ragged.weights is None else np.ascontiguousarray(ragged.weights)

"""Embedding combiners: reduce the rows of each sample's ids to one activation, and back.

A batch has B samples (segments) holding N ids in all. The ids' U distinct rows were looked up as
``rows`` [U, D]; ``index`` [N] gives each id's row, ``offsets`` [B + 1] each segment's ids and
``weights`` [N] (float32, None for all ones) each id's weight. The combiners are

- ``"sum"``: ``out[b] = Σ_i w_i·rows[index[i]]`` over the ids ``i`` of segment ``b``, [B, D];
- ``"mean"``: that sum divided by ``Σ_i w_i``; zeros where the weights sum to 0, [B, D];
- ``"tile"``: the first ``tile_len`` ids of each segment, each scaled by its weight, in order and
  zero-padded, [B, tile_len, D].

Rows may be float32, float64, float16 or bfloat16; other than float32 they are converted to
float32 first (one copy of ``rows``). Results are float32, accumulated in float32 in id order.
CuPy arrays run the CUDA kernels of :mod:`recis.core.cuda.segment`, with equal results.

>>> rows = np.array([[1.0, 2.0], [10.0, 20.0]], dtype=np.float32)
>>> index, offsets = np.array([0, 1, 1]), np.array([0, 2, 3])
>>> segment_reduce(rows, index, offsets, mode="sum").tolist()
[[11.0, 22.0], [10.0, 20.0]]
>>> segment_reduce_backward(np.ones((2, 2), np.float32), index, offsets, num_rows=2).tolist()
[[1.0, 1.0], [2.0, 2.0]]
"""

from __future__ import annotations

import sys

import ml_dtypes
import numba
import numpy as np

from recis.core.arrays import empty
from recis.core.kernels.segment import (
    segment_pool,
    segment_pool_backward,
    segment_tile,
    segment_tile_backward,
)
from recis.core.ragged import as_offsets

MODES = ("sum", "mean", "tile")
FLOAT_DTYPES = frozenset(np.dtype(t) for t in ("float16", "float32", "float64", ml_dtypes.bfloat16))


def segment_reduce(
    rows: np.ndarray,
    index: np.ndarray,
    offsets: np.ndarray,
    weights: np.ndarray | None = None,
    mode: str = "sum",
    tile_len: int | None = None,
) -> np.ndarray:
    """Combine ``rows[index]`` per segment: [B, D] for sum and mean, [B, tile_len, D] for tile.

    ``tile_len`` is required for ``"tile"`` and not accepted otherwise.

    >>> rows = np.array([[1.0], [2.0]], dtype=np.float32)
    >>> index, offsets = np.array([1, 0, 1]), np.array([0, 0, 3])
    >>> w = np.array([1.0, 2.0, 1.0], dtype=np.float32)
    >>> segment_reduce(rows, index, offsets, w, mode="mean").tolist()
    [[0.0], [1.5]]
    >>> segment_reduce(rows, index, offsets, w, mode="tile", tile_len=2).tolist()
    [[[0.0], [0.0]], [[2.0], [2.0]]]
    """
    tile_len = _check_mode(mode, tile_len)
    if not isinstance(rows, np.ndarray) and _on_gpu(rows):
        return _cuda().segment_reduce(rows, index, offsets, weights, mode, tile_len)
    rows = _as_float32_matrix(rows, "rows")
    index, offsets, weights = _check_segments(index, offsets, weights, len(rows))
    num_segments, dim = len(offsets) - 1, rows.shape[1]
    if mode == "tile":
        out = empty((num_segments, tile_len, dim), np.float32)
        segment_tile(rows, index, offsets, weights, out)
    else:
        out = empty((num_segments, dim), np.float32)
        segment_pool(rows, index, offsets, weights, mode == "mean", out)
    return out


def segment_reduce_backward(
    grad_out: np.ndarray,
    index: np.ndarray,
    offsets: np.ndarray,
    weights: np.ndarray | None = None,
    mode: str = "sum",
    *,
    num_rows: int,
    tile_len: int | None = None,
) -> np.ndarray:
    """Gradient of :func:`segment_reduce` w.r.t. ``rows``, [num_rows, D] float32.

    ``grad_out`` has the shape of the forward output. Ids that share a row add their gradients.

    >>> grad = np.array([[[1.0], [2.0]]], dtype=np.float32)
    >>> index, offsets = np.array([0, 0, 1]), np.array([0, 3])
    >>> segment_reduce_backward(grad, index, offsets, mode="tile", num_rows=2, tile_len=2).tolist()
    [[3.0], [0.0]]
    """
    tile_len = _check_mode(mode, tile_len)
    if not isinstance(num_rows, int | np.integer) or num_rows < 0:
        raise ValueError(f"num_rows: expected a non-negative integer, got {num_rows!r}")
    if not isinstance(grad_out, np.ndarray) and _on_gpu(grad_out):
        cuda = _cuda()
        return cuda.segment_reduce_backward(
            grad_out, index, offsets, weights, mode, int(num_rows), tile_len
        )
    index, offsets, weights = _check_segments(index, offsets, weights, int(num_rows))
    grad_out = _as_float32_grad(grad_out, len(offsets) - 1, tile_len)
    grad_rows = empty((num_rows, grad_out.shape[-1]), np.float32)
    num_parts = max(min(numba.get_num_threads(), num_rows), 1)
    if mode == "tile":
        segment_tile_backward(grad_out, index, offsets, weights, num_parts, grad_rows)
    else:
        normalize = mode == "mean"
        segment_pool_backward(grad_out, index, offsets, weights, normalize, num_parts, grad_rows)
    return grad_rows


def _on_gpu(array) -> bool:
    """Whether ``array`` is a CuPy array (the caller already knows it is no NumPy array)."""
    cupy = sys.modules.get("cupy")
    return cupy is not None and isinstance(array, cupy.ndarray)


def _cuda():
    from recis.core.cuda import segment as cuda_segment

    return cuda_segment


def _check_mode(mode: str, tile_len: int | None) -> int | None:
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
    if mode != "tile":
        if tile_len is not None:
            raise ValueError(f"tile_len: only applies to mode='tile', got mode={mode!r}")
        return None
    if not isinstance(tile_len, int | np.integer) or tile_len < 1:
        raise ValueError(f"tile_len: mode='tile' needs a positive integer, got {tile_len!r}")
    return int(tile_len)


def _check_segments(index, offsets, weights, num_rows: int):
    """Validate ``index``/``offsets``/``weights``; return them as int64, int64 and float32."""
    if not isinstance(index, np.ndarray) or index.ndim != 1 or index.dtype.kind not in "iu":
        raise TypeError("index: expected a 1-D integer NumPy array")
    index = np.ascontiguousarray(index, dtype=np.int64)
    if len(index) and (index.min() < 0 or index.max() >= num_rows):
        raise ValueError(f"index: entries must lie in [0, {num_rows}) (the rows looked up)")
    offsets = np.ascontiguousarray(as_offsets(offsets, len(index), "offsets", "ids in index"))
    if weights is None:
        return index, offsets, np.ones(len(index), dtype=np.float32)
    if not isinstance(weights, np.ndarray) or weights.ndim != 1 or weights.dtype != np.float32:
        raise TypeError("weights: expected a 1-D float32 NumPy array or None")
    if len(weights) != len(index):
        raise ValueError(f"weights: expected {len(index)} weights (one per id), got {len(weights)}")
    return index, offsets, np.ascontiguousarray(weights)


def _as_float32_matrix(array, name: str) -> np.ndarray:
    if not isinstance(array, np.ndarray) or array.ndim != 2:
        raise TypeError(f"{name}: expected a 2-D NumPy array")
    return _as_float32(array, name)


def _as_float32_grad(grad_out, num_segments: int, tile_len: int | None) -> np.ndarray:
    if not isinstance(grad_out, np.ndarray):
        raise TypeError("grad_out: expected a NumPy array")
    leading = (num_segments,) if tile_len is None else (num_segments, tile_len)
    if grad_out.ndim != len(leading) + 1 or grad_out.shape[:-1] != leading:
        raise ValueError(f"grad_out: expected shape {(*leading, 'D')}, got {grad_out.shape}")
    return _as_float32(grad_out, "grad_out")


def _as_float32(array: np.ndarray, name: str) -> np.ndarray:
    if array.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{name}: expected float16, bfloat16, float32 or float64, got {array.dtype}"
        )
    return np.ascontiguousarray(array, dtype=np.float32)

"""Indexing a :class:`~recis.backends.torch.ragged.RaggedTensor` as RecIS does.

The first axis takes an integer (the row; a 2-D tensor gives a plain tensor) or a slice;
every other axis takes a slice, applied to each row on its own with Python's rules (negative
bounds count from that row's end). ``None`` inserts an axis of length 1 and ``...`` stands for
the axes not named. Weights follow their values. Values are indexed on their first axis only
(a ragged tensor of embedding rows keeps its rows whole).

>>> import torch
>>> from recis.backends.torch.ragged import RaggedTensor
>>> r = RaggedTensor(torch.tensor([1, 2, 3, 4, 5, 6]), [torch.tensor([0, 2, 5, 6])])
>>> r[1].tolist()
[3, 4, 5]
>>> r[:, -2:].to_dense().tolist()
[[1, 2], [4, 5], [6, 0]]
>>> r[None].shape
(1, 3, 3)
"""

from __future__ import annotations

import numpy as np
import torch


def ragged_getitem(ragged, key):
    """``ragged[key]`` (see the module docstring)."""
    from recis.backends.torch.ragged import RaggedTensor

    levels = [o.detach().cpu().numpy().astype(np.int64) for o in ragged.offsets()]
    keys = _expand(key if isinstance(key, tuple) else (key,), len(levels) + 1)
    axes = [k for k in keys if k is not None] or [slice(None)]
    chosen = np.arange(len(levels[0]) - 1)
    chosen = np.array([_row(axes[0], chosen.size)]) if isinstance(axes[0], int) else chosen[axes[0]]
    inner_keys = axes[1:] + [slice(None)] * (len(levels) + 1 - len(axes))
    new_levels = []
    for level, axis_key in zip(levels, inner_keys, strict=True):
        if isinstance(axis_key, int):
            raise IndexError("RaggedTensor takes an integer index only on its first axis")
        counts, chosen = _slice_rows(level, chosen, axis_key)
        new_levels.append(np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))
    if isinstance(axes[0], int):
        new_levels = new_levels[1:]
    for position in _new_axis_positions(keys, isinstance(axes[0], int)):
        new_levels = _insert_axis(new_levels, position, len(chosen))
    index = torch.as_tensor(chosen, device=ragged.values().device)
    values = ragged.values()[index]
    if not new_levels:
        return values
    like = ragged.offsets()[0]
    offsets = [
        torch.as_tensor(level).to(device=like.device, dtype=like.dtype) for level in new_levels
    ]
    weight = ragged.weight()
    return RaggedTensor(values, offsets, None if weight is None else weight[index])


def _expand(keys: tuple, dims: int) -> list:
    """``keys`` with ``...`` replaced by full slices; checks the count of axes."""
    named = sum(k is not None and k is not Ellipsis for k in keys)
    if named > dims:
        raise IndexError(f"too many indices for a RaggedTensor of {dims} dimensions")
    out = []
    for k in keys:
        if k is Ellipsis:
            out += [slice(None)] * (dims - named)
            named = dims
        elif k is None or isinstance(k, int | slice):
            out.append(k)
        else:
            raise IndexError(f"RaggedTensor indices must be ints, slices, None or ..., got {k!r}")
    return out


def _row(index: int, rows: int) -> int:
    if not -rows <= index < rows:
        raise IndexError(f"index {index} is out of range for {rows} rows")
    return index % rows


def _slice_rows(level: np.ndarray, parents: np.ndarray, key: slice):
    """Per parent, how many children ``key`` keeps, and the kept children in order."""
    kept = [np.arange(level[p], level[p + 1])[key] for p in parents]
    counts = np.array([k.size for k in kept], np.int64)
    children = np.concatenate(kept) if kept else np.zeros(0, np.int64)
    return counts, children.astype(np.int64)


def _new_axis_positions(keys: list, dropped_first: bool) -> list[int]:
    """Output positions of the ``None`` keys, in increasing order."""
    positions, axis = [], 0
    for i, k in enumerate(keys):
        if k is None:
            positions.append(axis)
            axis += 1
        elif not (dropped_first and i == _first_axis(keys)):
            axis += 1
    return positions


def _first_axis(keys: list) -> int:
    return next(i for i, k in enumerate(keys) if k is not None)


def _insert_axis(levels: list, position: int, values: int) -> list:
    """Offsets with a length-1 axis at ``position``: each item of the axis before gets one."""
    counts = [len(levels[0]) - 1 if levels else values] + [int(lv[-1]) for lv in levels]
    if position == 0:
        return [np.array([0, counts[0]], np.int64), *levels]
    new = np.arange(counts[position - 1] + 1, dtype=np.int64)
    return [*levels[: position - 1], new, *levels[position - 1 :]]

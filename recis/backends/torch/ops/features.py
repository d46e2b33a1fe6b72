"""RecIS's id ops: ids partition across ranks and the weighted ragged feature cross.

>>> import torch
>>> ids = torch.tensor([70000, 5, 5, 65541])
>>> [t.tolist() for t in torch.ops.recis.ids_partition(ids, 2)]
[[5, 65541, 70000], [3, 0], [2, 0, 0, 1]]
"""

from __future__ import annotations

import torch

from recis.backends.torch.ops.registry import dynamic_size, on_engine, recis_op

SLICES = 1 << 16


def _partition_fake(ids, num_parts):
    return (
        ids.new_empty((dynamic_size(),)),
        ids.new_empty((num_parts,), dtype=torch.int64),
        ids.new_empty((ids.numel(),), dtype=torch.int64),
    )


@recis_op("ids_partition(Tensor _0, int _1) -> (Tensor, Tensor, Tensor)", _partition_fake)
def ids_partition(ids, num_parts):
    """Distinct ``ids`` grouped by owner: an id's slice is ``|id mod 65536|``, and the 65536
    slices are split into ``num_parts`` contiguous ranges (the first ``65536 % num_parts`` one
    larger). Returns the distinct ids ordered by slice, how many fall in each
    part, and each input id's position among them.
    """
    if num_parts <= 0:
        raise ValueError(
            f"recis.ids_partition: the number of parts must be positive, got {num_parts}"
        )
    unique, inverse = torch.unique(ids.reshape(-1), sorted=True, return_inverse=True)
    slices = torch.fmod(unique, SLICES).abs()
    order = torch.argsort(slices)  # RecIS's (unstable) sort, for the same order of ties
    size, extra = divmod(SLICES, num_parts)
    part_sizes = torch.full((num_parts,), size, dtype=torch.int64, device=ids.device)
    part_sizes[:extra] += 1
    ends = torch.searchsorted(slices[order], torch.cumsum(part_sizes, 0))
    counts = torch.diff(ends, prepend=ends.new_zeros(1))
    return unique[order], counts, torch.argsort(order)[inverse]


def _cross_fake(x_values, x_offsets, x_weights, y_values, y_offsets, y_weights):
    rows = torch.sym_min(x_offsets.shape[0], y_offsets.shape[0])
    count = dynamic_size()
    return (
        x_values.new_empty((count,)),
        x_offsets.new_empty((rows,)),
        x_weights.new_empty((count,), dtype=torch.float32),
    )


@recis_op(
    "feature_cross_ragged(Tensor _0, Tensor _1, Tensor _2, Tensor _3, Tensor _4, Tensor _5) "
    "-> (Tensor, Tensor, Tensor)",
    _cross_fake,
)
@on_engine
def feature_cross_ragged(x_values, x_offsets, x_weights, y_values, y_offsets, y_weights):
    """Cross two weighted int64 id columns row by row (the engine's
    :func:`~recis.core.features.cross.feature_cross`): per row, each side's distinct ids
    (weights of repeats summed), every pair hashed with MurmurHash64A, weight ``w_x·w_y``.
    Only the first ``min(rows_x, rows_y)`` rows are crossed, as in RecIS. Returns the crossed
    ids, their offsets (in ``x_offsets``' dtype) and their float32 weights.

    >>> x = torch.tensor([1001, 1002, 1003]), torch.tensor([0, 1, 2, 3]), torch.ones(3)
    >>> y = torch.tensor([1, 2]), torch.tensor([0, 1, 2]), torch.ones(2)
    >>> values, offsets, weights = torch.ops.recis.feature_cross_ragged(*x, *y)
    >>> values.tolist(), offsets.tolist()
    ([-7808879811642834040, -4967483181219983279], [0, 1, 2])
    """
    from recis.backends.torch.bridge import as_tensor
    from recis.core.features.cross import feature_cross

    rows = min(x_offsets.numel(), y_offsets.numel()) - 1
    crossed = feature_cross(
        _side(x_values, x_offsets, x_weights, rows, "x"),
        _side(y_values, y_offsets, y_weights, rows, "y"),
    )
    offsets = as_tensor(crossed.offsets[0]).to(x_offsets.dtype)
    return as_tensor(crossed.values), offsets, as_tensor(crossed.weights)


def _side(values, offsets, weights, rows: int, name: str):
    from recis.backends.torch.bridge import as_engine
    from recis.core.ragged import Ragged

    offsets = offsets.reshape(-1)[: rows + 1].long()
    end = int(offsets[-1]) if rows >= 0 else 0
    return Ragged(
        as_engine(values.reshape(-1)[:end], f"{name}_val"),
        as_engine(offsets, f"{name}_offsets"),
        as_engine(weights.reshape(-1)[:end].float(), f"{name}_weight"),
    )

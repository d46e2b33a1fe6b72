"""RecIS's ragged ops: dense ↔ ragged and the fused 3-D cutoff, over the engine's ``Ragged``.

A ragged tensor is ``values`` (1-D) and a list of offsets, outermost level first.

>>> import torch
>>> dense = torch.tensor([[1, 0, 3, 0], [6, 7, 0, 0]])
>>> values, offsets = torch.ops.recis.dense_to_ragged(dense, True, torch.tensor([0]))
>>> values.tolist(), offsets[0].tolist()
([1, 0, 3, 6, 7], [0, 3, 5])
>>> torch.ops.recis.ragged_to_dense(values, offsets, -1).tolist()
[[1, 0, 3], [6, 7, -1]]
"""

from __future__ import annotations

import torch

from recis.backends.torch.ops.registry import dynamic_size, on_engine, recis_op


def _dense_to_ragged_fake(data, check_invalid, invalid_value):
    if check_invalid:
        return data.new_empty((dynamic_size(),)), [
            data.new_empty((data.shape[0] + 1,), dtype=torch.int32)
        ]
    rows, offsets = data.shape[0], []
    for width in data.shape[1:]:
        offsets.append(data.new_empty((rows + 1,), dtype=torch.int32))
        rows = rows * width
    return data.new_empty((data.numel(),)), offsets


@recis_op(
    "dense_to_ragged(Tensor _0, bool _1, Tensor _2) -> (Tensor, Tensor[])", _dense_to_ragged_fake
)
def dense_to_ragged(data, check_invalid, invalid_value):
    """Rows of ``data`` as a ragged tensor with int32 offsets.

    With ``check_invalid`` (2-D ``data`` only) each row ends at its last element different from
    ``invalid_value[0]``; otherwise every row is kept whole, one offsets level per inner
    dimension.
    """
    if not check_invalid:
        rows, offsets = data.shape[0], []
        for width in data.shape[1:]:
            end = rows * width + 1
            offsets.append(torch.arange(0, end, width, dtype=torch.int32, device=data.device))
            rows = rows * width
        return data.reshape(-1).clone(), offsets  # a copy: an op may not return a view
    if data.dim() != 2:
        raise ValueError(f"recis.dense_to_ragged: check_invalid needs 2-D data, got {data.dim()}-D")
    present = data != invalid_value.reshape(-1)[0].to(data.device)
    columns = torch.arange(1, data.shape[1] + 1, device=data.device)
    lengths = (present * columns).amax(dim=1) if data.shape[1] else present.sum(dim=1)
    keep = columns.unsqueeze(0) <= lengths.unsqueeze(1)
    offsets = torch.zeros(data.shape[0] + 1, dtype=torch.int32, device=data.device)
    offsets[1:] = torch.cumsum(lengths, 0)
    return data[keep], [offsets]


def _ragged_to_dense_fake(values, offsets, default_value):
    dims = [offsets[0].shape[0] - 1] + [dynamic_size() for _ in offsets]
    return values.new_empty(dims)


@recis_op("ragged_to_dense(Tensor _0, Tensor[] _1, Scalar _2) -> Tensor", _ragged_to_dense_fake)
@on_engine
def ragged_to_dense(values, offsets, default_value):
    """Pad the ragged tensor to ``[rows, longest row of each level…]`` with ``default_value``."""
    from recis.backends.torch.bridge import as_engine, as_tensor
    from recis.core.ragged import Ragged

    if values.dim() != 1:
        raise ValueError(f"recis.ragged_to_dense: values must be 1-D, got {values.dim()}-D")
    levels = tuple(as_engine(o.reshape(-1).long(), f"offsets[{i}]") for i, o in enumerate(offsets))
    ragged = Ragged(as_engine(values, "values"), levels)
    return as_tensor(ragged.to_dense(default=default_value))


def _cutoff_fake(values, outer_offsets, inner_offsets, keep_lengths, drop_sides, pad_sides):
    new_values = [v.new_empty((dynamic_size(),)) for v in values]
    outer = [o.new_empty(o.shape) for o in outer_offsets]
    inner = [i.new_empty((dynamic_size(),)) for i in inner_offsets]
    return new_values, outer, inner


@recis_op(
    "fused_ragged_cutoff_3D(Tensor[] _0, Tensor[] _1, Tensor[] _2, Tensor _3, Tensor _4, "
    "Tensor _5) -> (Tensor[], Tensor[], Tensor[])",
    _cutoff_fake,
)
@on_engine
def fused_ragged_cutoff_3D(
    values, outer_offsets, inner_offsets, keep_lengths, drop_sides, pad_sides
):
    """Give every sequence of tensor ``i`` exactly ``keep_lengths[i]`` inner lists: drop the
    extra ones from the start (``drop_sides[i]``) or the end, and pad short sequences with
    empty lists at the start (``pad_sides[i]``) or the end. Inner lists are kept whole.

    >>> values = [torch.tensor([10, 11, 12, 13, 14, 15, 16, 17, 18, 19])]
    >>> outer, inner = [torch.tensor([0, 3, 4, 6])], [torch.tensor([0, 1, 4, 4, 8, 8, 10])]
    >>> yes = torch.tensor([True])
    >>> v, o, i = torch.ops.recis.fused_ragged_cutoff_3D(
    ...     values, outer, inner, torch.tensor([2]), yes, yes)
    >>> v[0].tolist(), o[0].tolist(), i[0].tolist()
    ([11, 12, 13, 14, 15, 16, 17, 18, 19], [0, 2, 4, 6], [0, 3, 3, 3, 7, 7, 9])
    """
    from recis.backends.torch.bridge import as_engine, as_tensor
    from recis.core.features.truncate import fused_sequence_truncate
    from recis.core.ragged import Ragged

    count = len(values)
    if not len(outer_offsets) == len(inner_offsets) == count:
        raise ValueError(
            f"recis.fused_ragged_cutoff_3D: {count} values, {len(outer_offsets)} outer and "
            f"{len(inner_offsets)} inner offsets"
        )
    keep = _per_tensor(keep_lengths, count, "keep_lengths")
    drop_left, pad_left = (
        _per_tensor(s, count, n) for s, n in ((drop_sides, "drop_sides"), (pad_sides, "pad_sides"))
    )
    columns = [
        Ragged(as_engine(v, f"values[{k}]"), (_engine_offsets(o), _engine_offsets(i)))
        for k, (v, o, i) in enumerate(zip(values, outer_offsets, inner_offsets, strict=True))
    ]
    sides = ["left" if d else "right" for d in drop_left]
    cut = fused_sequence_truncate(columns, keep, sides, [3] * count, [False] * count)
    out_values, out_outer, out_inner = [], [], []
    for k, result in enumerate(cut):
        outer, inner = result.ragged.offsets
        if pad_left[k]:
            inner = _pad_at_start(inner, result.pad_nums, keep[k])
        out_values.append(as_tensor(result.ragged.values))
        out_outer.append(as_tensor(outer).to(outer_offsets[k].dtype))
        out_inner.append(as_tensor(inner).to(inner_offsets[k].dtype))
    return out_values, out_outer, out_inner


def _per_tensor(tensor: torch.Tensor, count: int, name: str) -> list:
    flat = tensor.reshape(-1).tolist()
    if len(flat) != count:
        raise ValueError(
            f"recis.fused_ragged_cutoff_3D: {name} has {len(flat)} entries, want {count}"
        )
    return flat


def _engine_offsets(offsets: torch.Tensor):
    from recis.backends.torch.bridge import as_engine

    return as_engine(offsets.reshape(-1).long(), "offsets")


def _pad_at_start(inner, pad_nums, width: int):
    """Move each sequence's empty padding lists from its end to its start."""
    import numpy as np

    lengths = np.diff(inner).reshape(-1, width)
    source = np.arange(width) - np.asarray(pad_nums).reshape(-1, 1)
    moved = np.where(source >= 0, np.take_along_axis(lengths, np.maximum(source, 0), 1), 0)
    return np.concatenate([[0], np.cumsum(moved.reshape(-1))]).astype(np.int64)

"""Gathering ragged rows by positions in their padded (truncated) form.

After a sequence truncation a row of the padded sequence space lost ``drop_num`` values on the
drop side and gained ``pad_num`` padding slots on the pad side (:class:`RaggedPadInfo`).
Position ``p`` of padded row ``r`` is value ``p + drop_num[r]·drop_side − pad_num[r]·pad_side``
of the stored row ``r``; positions outside the row read as 0 and are masked out.

>>> import torch
>>> from recis.backends.torch.ragged import RaggedPadInfo, RaggedTensor
>>> rows = RaggedTensor(torch.tensor([1, 2, 3, 4, 5]), [torch.tensor([0, 2, 5])])
>>> info = RaggedPadInfo(torch.tensor([0, 1]), torch.tensor([0, 0]), torch.tensor(True),
...                      torch.tensor(False))
>>> out, masks = index_select_ragged_by_padded_index(
...     info, torch.tensor([[0, 3], [0, 1]]), torch.tensor([0, 1]), [rows])
>>> out[0].values().tolist(), masks[0].tolist()
([1, 0, 4, 5], [True, False, True, True])
"""

from __future__ import annotations

import torch

from recis.backends.torch.ragged import RaggedPadInfo, RaggedTensor


def gather_ragged_by_padded_index(
    drop_num, drop_side, pad_num, pad_side, padded_indices, src_row_indices, offsets, values
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Per input, the gathered values ``[J·K]`` (0 where invalid) and their validity mask.

    Output row ``j`` reads stored row ``src_row_indices[j]`` at the padded positions
    ``padded_indices[j]`` (``[J, K]``). A side is one flag or one flag per stored row.
    """
    if len(offsets) != len(values):
        raise ValueError(
            f"gather_ragged_by_padded_index: {len(values)} values, {len(offsets)} offsets"
        )
    if padded_indices.dim() != 2:
        raise ValueError("gather_ragged_by_padded_index: padded_indices must be [rows, columns]")
    out_values, out_masks = [], []
    for i, (level, data) in enumerate(zip(offsets, values, strict=True)):
        device = data.device
        rows = src_row_indices.to(device=device, dtype=torch.int64)
        level = level.to(device=device, dtype=torch.int64)
        if level.numel() != offsets[0].numel():
            raise ValueError(f"gather_ragged_by_padded_index: offsets[{i}] has another row count")
        shift = _per_row(drop_num, drop_side, rows) - _per_row(pad_num, pad_side, rows)
        columns = padded_indices.to(device=device, dtype=torch.int64) + shift.unsqueeze(1)
        lengths = (level[1:] - level[:-1])[rows].unsqueeze(1)
        valid = (columns >= 0) & (columns < lengths)
        source = torch.where(valid, level[:-1][rows].unsqueeze(1) + columns, 0)
        gathered = data[source.reshape(-1)] if data.numel() else data.new_zeros(source.numel())
        out_values.append(torch.where(valid.reshape(-1), gathered, torch.zeros_like(gathered)))
        out_masks.append(valid.reshape(-1))
    return out_values, out_masks


def index_select_ragged_by_padded_index(
    pad_info: RaggedPadInfo,
    padded_indices: torch.Tensor,
    src_row_indices: torch.Tensor,
    source_tensors: list[RaggedTensor],
) -> tuple[list[RaggedTensor], list[torch.Tensor]]:
    """New ragged tensors of ``J`` rows of ``K`` values each (see the module docstring) and
    one boolean validity mask ``[J·K]`` per source tensor.
    """
    values = [t.values() for t in source_tensors]
    offsets = [t.offsets()[0] for t in source_tensors]
    out_values, masks = gather_ragged_by_padded_index(
        pad_info.drop_nums,
        pad_info.drop_sides,
        pad_info.pad_nums,
        pad_info.pad_sides,
        padded_indices,
        src_row_indices,
        offsets,
        values,
    )
    width = padded_indices.size(1)
    out_offsets = [
        torch.arange(0, padded_indices.numel() + 1, max(width, 1), dtype=o.dtype, device=v.device)
        for o, v in zip(offsets, out_values, strict=True)
    ]
    return [RaggedTensor(v, [o]) for v, o in zip(out_values, out_offsets, strict=True)], masks


def _per_row(counts, side, rows: torch.Tensor) -> torch.Tensor:
    """``counts[row]`` where the row's side flag is set, else 0."""
    counts = counts.to(device=rows.device, dtype=torch.int64)[rows]
    side = torch.as_tensor(side, device=rows.device).reshape(-1).to(torch.int64)
    return counts * (side if side.numel() == 1 else side[rows])

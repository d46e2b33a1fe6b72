"""RecIS's fused masks: 0.0 where a value is in its column's mask list, 1.0 elsewhere.

``fused_string_mask`` compares whole strings (int8 bytes split by offsets) with the column's mask
strings; ``fused_number_mask`` compares numbers (float32/64, int32/64) with the column's mask
numbers. One float32 tensor per column comes back, on the column's device.

>>> import torch
>>> data = torch.tensor(list(b"catdogbird"), dtype=torch.int8)
>>> fused_string_mask([data], [torch.tensor([0, 3, 6, 10])], [["cat", "bird"]])
[tensor([0., 1., 0.])]
>>> fused_number_mask([torch.tensor([1, 2, 3])], [[2.0]])
[tensor([1., 0., 1.])]
"""

from __future__ import annotations

import torch

_NUMBER_DTYPES = (torch.float32, torch.float64, torch.int32, torch.int64)


def fused_string_mask(
    inputs: list[torch.Tensor], input_offsets: list[torch.Tensor], masks: list[list[str]]
) -> list[torch.Tensor]:
    """Per column, 0.0 for each string equal to one of ``masks[i]`` (UTF-8), else 1.0."""
    _check_columns(inputs, masks, "fused_string_mask")
    if len(input_offsets) != len(inputs):
        raise ValueError(
            f"fused_string_mask: {len(inputs)} inputs but {len(input_offsets)} offsets"
        )
    outputs = []
    for i, (data, offsets, words) in enumerate(zip(inputs, input_offsets, masks, strict=True)):
        if data.dtype != torch.int8 or data.dim() != 1:
            raise TypeError(f"fused_string_mask: inputs[{i}] must be a 1-D int8 tensor")
        outputs.append(_string_mask(data, offsets, words))
    return outputs


def fused_number_mask(inputs: list[torch.Tensor], masks: list[list[float]]) -> list[torch.Tensor]:
    """Per column, 0.0 for each value equal to one of ``masks[i]``, else 1.0."""
    _check_columns(inputs, masks, "fused_number_mask")
    outputs = []
    for i, (values, numbers) in enumerate(zip(inputs, masks, strict=True)):
        if values.dtype not in _NUMBER_DTYPES or values.dim() != 1:
            raise TypeError(
                f"fused_number_mask: inputs[{i}] must be a 1-D float32, float64, int32 or int64 "
                f"tensor, got {values.dtype} with {values.dim()} dimensions"
            )
        as_double = values.double()
        masked = torch.isin(
            as_double, torch.tensor(numbers, dtype=torch.float64, device=values.device)
        )
        outputs.append((~masked).float())
    return outputs


def _string_mask(data: torch.Tensor, offsets: torch.Tensor, words: list[str]) -> torch.Tensor:
    """Strings compared by length first, then byte by byte against each mask word."""
    offsets = offsets.to(device=data.device, dtype=torch.int64)
    starts, lengths = offsets[:-1], offsets[1:] - offsets[:-1]
    masked = torch.zeros(lengths.numel(), dtype=torch.bool, device=data.device)
    for word in words:
        encoded = word.encode()
        rows = torch.nonzero(lengths == len(encoded)).reshape(-1)
        if rows.numel() == 0:
            continue
        expected = torch.tensor(list(encoded), dtype=torch.uint8, device=data.device).to(torch.int8)
        positions = starts[rows].unsqueeze(1) + torch.arange(len(encoded), device=data.device)
        equal = (data[positions] == expected).all(dim=1)
        masked[rows[equal]] = True
    return (~masked).float()


def _check_columns(inputs, masks, op: str) -> None:
    if not isinstance(inputs, list | tuple) or not inputs:
        raise ValueError(f"{op}: inputs must be a non-empty list of tensors")
    if len(masks) != len(inputs):
        raise ValueError(f"{op}: {len(inputs)} inputs but {len(masks)} mask lists")

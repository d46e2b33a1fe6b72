"""RecIS's ``fused_ops``: one feature op applied to many columns in one engine call.

Despite their ``_gpu`` names (RecIS's), these take CPU or CUDA tensors and return results on the
inputs' device.

>>> import torch
>>> fused_uint64_mod_gpu([torch.tensor([17, -1]), torch.tensor([9])], [10, 4])
[tensor([7, 5]), tensor([1])]
>>> fused_bucketize_gpu([torch.tensor([0.5, 2.0, 9.0])], [torch.tensor([1.0, 2.0])])
[tensor([0, 2, 2])]
"""

from __future__ import annotations

import torch

from recis.backends.torch.features.columns import engine_array, input_device
from recis.core import features as engine
from recis.core.arrays import export_like
from recis.core.decimal_strings import int64_to_decimal_bytes
from recis.core.features.multi_hash import fused_multi_hash_with

ENCODE_SHIFT = 52  # RecIS keeps an id's low 52 bits and puts the table id above them
_ID_MASK = (1 << ENCODE_SHIFT) - 1


def fused_bucketize_gpu(
    values: list[torch.Tensor], boundaries: list[torch.Tensor]
) -> list[torch.Tensor]:
    """Per column, how many of its sorted ``boundaries`` are ≤ each value (int64)."""
    _check_same_length(values, boundaries, "values", "boundaries")
    edges = [b.detach().cpu().double().numpy() for b in boundaries]
    with input_device(values):
        columns = [engine_array(v, f"values[{i}]") for i, v in enumerate(values)]
        out = engine.fused_bucketize(columns, edges)
    return [export_like(o, v) for o, v in zip(out, values, strict=True)]


def fused_uint64_mod_gpu(values: list[torch.Tensor], mods) -> list[torch.Tensor]:
    """Per column, its int64 ids taken as uint64 modulo that column's entry of ``mods``."""
    mods = [int(m) for m in (mods.tolist() if isinstance(mods, torch.Tensor) else mods)]
    _check_same_length(values, mods, "values", "mods")
    with input_device(values):
        columns = [engine_array(v, f"values[{i}]") for i, v in enumerate(values)]
        out = engine.fused_mod(columns, mods)
    return [export_like(o, v) for o, v in zip(out, values, strict=True)]


def fused_ids_encode_gpu(ids_list: list[torch.Tensor], table_ids) -> torch.Tensor:
    """All ids in one tensor, each ``(id & (2**52 − 1)) + (table_id << 52)`` of its table.

    >>> fused_ids_encode_gpu([torch.tensor([5]), torch.tensor([-1])], [0, 1]).tolist()
    [5, 9007199254740991]
    """
    if not isinstance(ids_list, list):
        raise TypeError("ids_list: expected a list of tensors")
    device = ids_list[0].device if ids_list else torch.device("cpu")
    for i, ids in enumerate(ids_list):
        if ids.device != device or ids.dtype != torch.int64:
            raise ValueError(f"ids_list[{i}]: expected int64 ids on {device}")
    table_ids = torch.as_tensor(table_ids, dtype=torch.int64, device=device).reshape(-1)
    _check_same_length(ids_list, table_ids, "ids_list", "table_ids")
    if not ids_list:
        return torch.zeros(0, dtype=torch.int64)
    counts = torch.tensor([ids.numel() for ids in ids_list], device=device)
    tables = torch.repeat_interleave(table_ids, counts)
    ids = torch.cat([ids.reshape(-1) for ids in ids_list])
    return (ids & _ID_MASK) + (tables << ENCODE_SHIFT)


def fused_multi_hash(
    inputs: list[torch.Tensor],
    muls: list[torch.Tensor],
    primes: list[torch.Tensor],
    bucket_nums: list[torch.Tensor],
) -> list[torch.Tensor]:
    """``((id · muls[f][k]) mod primes[f][k]) mod bucket_nums[f][k]``: for input 0 one tensor per
    ``k``, then for input 1, and so on (a flat list).

    >>> one = torch.tensor([1, 3])
    >>> fused_multi_hash([torch.tensor([5, 6])], [one], [one * 0 + 7], [one * 0 + 4])
    [tensor([1, 2]), tensor([1, 0])]
    """
    if not len(inputs) == len(muls) == len(primes) == len(bucket_nums) or not inputs:
        raise ValueError("fused_multi_hash: expected equally long, non-empty parameter lists")
    params = [[p.detach().cpu().numpy() for p in group] for group in (muls, primes, bucket_nums)]
    with input_device(inputs):
        columns = [engine_array(x, f"inputs[{i}]") for i, x in enumerate(inputs)]
        out = fused_multi_hash_with(columns, *params)
    return [export_like(h, x) for hashes, x in zip(out, inputs, strict=True) for h in hashes]


def fused_int64_to_string_int8(
    inputs: list[torch.Tensor],
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Every int64 as its decimal text: per input, int8 ASCII bytes and int64 offsets [n + 1].

    Computed on the CPU; CUDA inputs are copied there and the results back.

    >>> data, offsets = fused_int64_to_string_int8([torch.tensor([12, -3])])
    >>> data[0].tolist(), offsets[0].tolist()
    ([49, 50, 45, 51], [0, 2, 4])
    """
    if not isinstance(inputs, list) or not inputs:
        raise ValueError("inputs: expected a non-empty list of tensors")
    outputs, offsets = [], []
    for i, x in enumerate(inputs):
        if x.dtype != torch.int64 or x.dim() != 1 or x.device != inputs[0].device:
            raise ValueError(f"inputs[{i}]: expected a 1-D int64 tensor on {inputs[0].device}")
        data, starts = int64_to_decimal_bytes(x.detach().cpu().numpy())
        outputs.append(torch.from_numpy(data).to(x.device))
        offsets.append(torch.from_numpy(starts).to(x.device))
    return outputs, offsets


def _check_same_length(first, second, first_name: str, second_name: str) -> None:
    if len(first) != len(second):
        raise ValueError(
            f"{first_name} and {second_name}: {len(first)} against {len(second)} entries"
        )

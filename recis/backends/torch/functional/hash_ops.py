"""RecIS's ``hash_ops``: 64-bit hashes of byte strings, many columns per call.

Every function takes ``inputs``, a list of int8 byte tensors, and ``offsets``, one offsets
tensor [n + 1] per input (string ``i`` of input ``f`` is ``inputs[f][offsets[f][i]:
offsets[f][i + 1]]``), and returns one int64 tensor of n hashes per input, on the input's device.

>>> import torch
>>> data = torch.tensor([0, 1, 2, 1, 2, 3], dtype=torch.int8)
>>> farmhash([data], [torch.tensor([0, 3, 6], dtype=torch.int32)])[0].tolist()
[-7736835464683084646, -5546720800891377920]
>>> murmurhash([data], [torch.tensor([0, 3, 6])])[0].tolist()
[-4003751876240412087, -1042754718167355375]
"""

from __future__ import annotations

import torch

from recis.backends.torch.features.columns import engine_array, input_device
from recis.core.arrays import export_like
from recis.core.classic_string_hash import hash_strings_classic
from recis.core.features.hashing import fused_hash_column
from recis.core.ragged import Ragged


def farmhash(inputs: list[torch.Tensor], splits: list[torch.Tensor]) -> list[torch.Tensor]:
    """farmhash ``Fingerprint64`` of every string (see the module docstring)."""
    return _fused_hash(inputs, splits, "farm")


def murmurhash(inputs: list[torch.Tensor], splits: list[torch.Tensor]) -> list[torch.Tensor]:
    """MurmurHash64A (seed 0) of every string."""
    return _fused_hash(inputs, splits, "murmur")


def djb2hash(inputs: list[torch.Tensor], splits: list[torch.Tensor]) -> list[torch.Tensor]:
    """djb2 (``h = h·33 + byte`` from 5381, modulo 2**64) of every string.

    >>> djb2hash([torch.tensor([1, 2], dtype=torch.int8)], [torch.tensor([0, 2])])[0].tolist()
    [5859944]
    """
    return _classic_hash(inputs, splits, "djb2")


def sdbmhash(inputs: list[torch.Tensor], splits: list[torch.Tensor]) -> list[torch.Tensor]:
    """sdbm (``h = byte + (h << 6) + (h << 16) − h`` from 0, modulo 2**64) of every string."""
    return _classic_hash(inputs, splits, "sdbm")


def _fused_hash(inputs, splits, hash_type: str) -> list[torch.Tensor]:
    _check_lists(inputs, splits)
    with input_device(inputs):
        columns = [
            Ragged(engine_array(data, f"inputs[{i}]"), engine_array(offsets, f"splits[{i}]"))
            for i, (data, offsets) in enumerate(zip(inputs, splits, strict=True))
        ]
        hashes = fused_hash_column(columns, [hash_type] * len(columns))
    return [export_like(h, data) for h, data in zip(hashes, inputs, strict=True)]


def _classic_hash(inputs, splits, hash_type: str) -> list[torch.Tensor]:
    """djb2/sdbm run on the CPU: CUDA inputs are copied there and the hashes back."""
    _check_lists(inputs, splits)
    outputs = []
    for i, (data, offsets) in enumerate(zip(inputs, splits, strict=True)):
        hashes = hash_strings_classic(
            engine_array(data.cpu(), f"inputs[{i}]"),
            engine_array(offsets.cpu(), f"splits[{i}]"),
            hash_type,
        )
        outputs.append(torch.from_numpy(hashes).to(data.device))
    return outputs


def _check_lists(inputs, splits) -> None:
    if not isinstance(inputs, list | tuple) or not isinstance(splits, list | tuple):
        raise TypeError("inputs and splits: expected lists of tensors")
    if len(inputs) != len(splits):
        raise ValueError(f"inputs and splits: {len(inputs)} inputs but {len(splits)} splits")
    for i, data in enumerate(inputs):
        if data.dtype not in (torch.int8, torch.uint8) or data.dim() != 1:
            raise TypeError(f"inputs[{i}]: expected a 1-D int8 tensor of bytes, got {data.dtype}")

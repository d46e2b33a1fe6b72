"""RecIS's ``array_ops``: bucketize, unsigned modulo and multi-hash of one tensor of any shape.

>>> import torch
>>> bucketize(torch.tensor([[0.5, 1.0], [2.5, 9.0]]), [1.0, 2.0])
tensor([[0, 1],
        [2, 2]])
>>> bucketize_mod(torch.tensor([12345, -1]), 1000)
tensor([345, 615])
"""

from __future__ import annotations

import torch

from recis.backends.torch.functional.fused_ops import (
    fused_bucketize_gpu,
    fused_multi_hash,
    fused_uint64_mod_gpu,
)


def bucketize(input: torch.Tensor, boundaries) -> torch.Tensor:
    """How many of the sorted ``boundaries`` are ≤ each value (int64, ``input``'s shape)."""
    boundaries = torch.as_tensor(boundaries).reshape(-1)
    return fused_bucketize_gpu([input.reshape(-1)], [boundaries])[0].reshape(input.shape)


def bucketize_mod(input: torch.Tensor, bucket: int) -> torch.Tensor:
    """The int64 ids of ``input`` taken as uint64, modulo ``bucket``."""
    if input.dtype != torch.int64:
        raise TypeError(f"bucketize_mod: expected int64 ids, got {input.dtype}")
    return fused_uint64_mod_gpu([input.reshape(-1)], [bucket])[0].reshape(input.shape)


def multi_hash(input: torch.Tensor, muls, primes, bucket_num) -> list[torch.Tensor]:
    """One tensor per multiplier: ``((id · muls[k]) mod primes[k]) mod bucket_num`` (a bucket
    count for all, or one per multiplier).

    >>> multi_hash(torch.tensor([5, 6]), [1, 3], [7, 7], 4)
    [tensor([1, 2]), tensor([1, 0])]
    """
    if input.dtype != torch.int64:
        raise TypeError(f"multi_hash: expected int64 ids, got {input.dtype}")
    muls = torch.as_tensor(muls, dtype=torch.int64).reshape(-1)
    primes = torch.as_tensor(primes, dtype=torch.int64).reshape(-1)
    buckets = torch.as_tensor(bucket_num, dtype=torch.int64).reshape(-1).expand(len(muls))
    hashes = fused_multi_hash([input.reshape(-1)], [muls], [primes], [buckets.contiguous()])
    return [h.reshape(input.shape) for h in hashes]


def parse_sample_id(data, is_max: bool = True) -> int:
    """The newest (``is_max``) or oldest timestamp of a batch's sample ids: the integer after
    each id's last ``^`` (``data``: a list of strings, or an array of ``str``/``bytes``).

    >>> parse_sample_id(["u1^item^1700000005", "u2^item^1700000003"], is_max=False)
    1700000003
    """
    ids = data.reshape(-1).tolist() if hasattr(data, "reshape") else list(data)
    ids = [i.decode() if isinstance(i, bytes) else str(i) for i in ids]
    return torch.ops.recis.parse_sample_id(ids, is_max)

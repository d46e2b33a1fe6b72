"""RecIS's sampler ops: rows tiled or interleaved by per-row sample counts, sample-id timestamps.

A sampler draws ``counts[i]`` extra samples for row ``i``; ``tile_with_sample_counts`` repeats
each row ``1 + counts[i]`` times to line it up with them, ``combine_vector_with_sample_counts``
puts each row followed by its drawn samples, and ``parse_sample_id`` reads the newest (or
oldest) timestamp of a batch's sample ids.

>>> import torch
>>> counts = torch.tensor([1, 0, 2])
>>> torch.ops.recis.tile_with_sample_counts(torch.tensor([10, 20, 30]), counts).tolist()
[10, 10, 20, 30, 30, 30]
>>> sampled = torch.tensor([-1, -3, -4])
>>> torch.ops.recis.combine_vector_with_sample_counts(torch.tensor([1, 2, 3]), counts, sampled)
tensor([ 1, -1,  2,  3, -3, -4])
>>> torch.ops.recis.parse_sample_id(["u^i^1700000002", "u^j^1700000001"], True)
1700000002
"""

from __future__ import annotations

import torch

from recis.backends.torch.ops.registry import dynamic_size, recis_op
from recis.core.sample_ids import newest_timestamp


def _checked_counts(rows: torch.Tensor, counts: torch.Tensor, op: str) -> torch.Tensor:
    if rows.dim() == 0:
        raise ValueError(f"recis.{op}: the input needs a first (row) dimension, got a scalar")
    if counts.numel() != rows.shape[0]:
        raise ValueError(
            f"recis.{op}: sample counts has {counts.numel()} entries for {rows.shape[0]} rows"
        )
    if counts.dtype.is_floating_point or counts.dtype.is_complex or counts.dtype == torch.bool:
        raise TypeError(f"recis.{op}: sample counts must be integers, got {counts.dtype}")
    counts = counts.reshape(-1).to(device=rows.device, dtype=torch.int64)
    if bool((counts < 0).any()):
        raise ValueError(f"recis.{op}: sample counts must be >= 0, got {counts.tolist()}")
    return counts


def _tile_fake(rows, counts):
    return rows.new_empty((dynamic_size(), *rows.shape[1:]))


@recis_op("tile_with_sample_counts(Tensor _0, Tensor _1) -> Tensor", _tile_fake)
def tile_with_sample_counts(rows, counts):
    """Each row of ``rows`` repeated ``1 + counts[i]`` times, in order."""
    counts = _checked_counts(rows, counts, "tile_with_sample_counts")
    return torch.repeat_interleave(rows, counts + 1, dim=0)


def _combine_fake(origin, counts, sampled):
    return origin.new_empty((origin.shape[0] + sampled.shape[0], *origin.shape[1:]))


@recis_op(
    "combine_vector_with_sample_counts(Tensor _0, Tensor _1, Tensor _2) -> Tensor", _combine_fake
)
def combine_vector_with_sample_counts(origin, counts, sampled):
    """Each row of ``origin`` followed by its ``counts[i]`` rows of ``sampled`` (taken in order).

    ``sampled`` has ``sum(counts)`` rows of as many elements as a row of ``origin``; the result
    has ``origin``'s dtype and row shape.
    """
    op = "combine_vector_with_sample_counts"
    counts = _checked_counts(origin, counts, op)
    total = int(counts.sum())
    if sampled.dim() == 0 or sampled.shape[0] != total:
        rows = sampled.shape[0] if sampled.dim() else "no"
        raise ValueError(f"recis.{op}: sampled has {rows} rows, sample counts sum to {total}")
    row_size = origin[0:1].numel() if origin.shape[0] else origin.shape[1:].numel()
    sampled_row_size = sampled[0:1].numel() if total else sampled.shape[1:].numel()
    if sampled_row_size != row_size:
        raise ValueError(
            f"recis.{op}: rows of origin {tuple(origin.shape[1:])} and of sampled "
            f"{tuple(sampled.shape[1:])} differ in size"
        )
    sampled = sampled.reshape(total, *origin.shape[1:]).to(origin.device, origin.dtype)
    is_origin = torch.zeros(origin.shape[0] + total, dtype=torch.bool, device=origin.device)
    is_origin[torch.cumsum(counts + 1, 0) - (counts + 1)] = True
    out = origin.new_empty((origin.shape[0] + total, *origin.shape[1:]))
    out[is_origin] = origin
    out[~is_origin] = sampled
    return out


def _parse_sample_id_fake(sample_ids, newest):
    return newest_timestamp(sample_ids, newest)


@recis_op("parse_sample_id(str[] _0, bool _1) -> int", _parse_sample_id_fake)
def parse_sample_id(sample_ids, newest):
    """The largest (``newest``) or smallest timestamp after the last ``^`` of the ids."""
    return newest_timestamp(sample_ids, newest)

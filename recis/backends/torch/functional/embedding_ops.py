"""RecIS's ``embedding_ops``: segment reductions of embedding rows, and id bookkeeping.

``unique_emb`` [U, D] holds distinct rows; ``reverse_indices`` [N] gives each id's row and
``weight`` [N] its weight. A *ragged* reduction groups the ids by ``offsets`` [B + 1]; a *sparse*
one by ``segment_ids`` [N] (any order). Gradients flow to ``unique_emb``.

>>> import torch
>>> rows = torch.tensor([[1.0, 2.0], [10.0, 20.0]], requires_grad=True)
>>> index, offsets = torch.tensor([0, 1, 1]), torch.tensor([0, 2, 3])
>>> out = ragged_embedding_segment_reduce(rows, None, index, offsets, "sum")
>>> out.tolist()
[[11.0, 22.0], [10.0, 20.0]]
>>> out.sum().backward(); rows.grad.tolist()
[[1.0, 1.0], [2.0, 2.0]]
"""

from __future__ import annotations

import torch

from recis.backends.torch.features.columns import engine_array, input_device
from recis.backends.torch.functional.fused_ops import fused_ids_encode_gpu
from recis.backends.torch.functional.ragged_ops import RaggedTile
from recis.core.arrays import export_like
from recis.core.segment import segment_reduce, segment_reduce_backward

SLICE_SIZE = 65536  # RecIS's key space: an id's slice is its low 16 bits
_BACKENDS = ("recis", "torch")


def segment_sum_sparse(data, weight, indices, segment_ids, num_segments, backend="recis"):
    """``out[s] = Σ weight[i]·data[indices[i]]`` over the ``i`` with ``segment_ids[i] == s``.

    ``weight`` None weighs every entry 1. Both backends compute the same sums.

    >>> segment_sum_sparse(torch.eye(2), None, torch.tensor([0, 1, 1]),
    ...                    torch.tensor([1, 1, 0]), 2).tolist()
    [[0.0, 1.0], [1.0, 1.0]]
    """
    _check_backend(backend, "Segment sum sparse")
    rows = data[indices.long()]
    if weight is not None:
        rows = rows * weight.unsqueeze(-1).to(rows.dtype)
    out = rows.new_zeros((int(num_segments), data.shape[-1]))
    return out.index_add(0, segment_ids.long(), rows)


def weight_norm_sparse(data, weight, segment_ids, num_segments, backend="recis"):
    """Each weight divided by its segment's total: the weight sum (``"recis"``) or the number of
    entries (``"torch"``), as RecIS's two backends do. ``weight`` None weighs every entry 1.

    >>> w = torch.tensor([1.0, 3.0, 2.0])
    >>> weight_norm_sparse(None, w, torch.tensor([0, 0, 1]), 2).tolist()
    [0.25, 0.75, 1.0]
    >>> weight_norm_sparse(None, w, torch.tensor([0, 0, 1]), 2, backend="torch").tolist()
    [0.5, 1.5, 2.0]
    """
    _check_backend(backend, "Weight norm sparse")
    segment_ids = segment_ids.long()
    if weight is None:
        dtype = data.dtype if data is not None else torch.float32
        weight = torch.ones(segment_ids.numel(), dtype=dtype, device=segment_ids.device)
    addend = weight if backend == "recis" else torch.ones_like(weight)
    totals = weight.new_zeros(int(num_segments)).index_add(0, segment_ids, addend)
    if backend == "torch":
        totals = totals + (totals <= 0).to(totals.dtype)
    return weight / totals[segment_ids]


class EmbeddingSegmentReduceSparse(torch.autograd.Function):
    """``combiner`` ("sum" or "mean") of ``unique_emb[reverse_indices]`` per segment id."""

    @staticmethod
    def forward(
        ctx, unique_emb, weight, reverse_indices, segment_ids, num_segments, combiner, backend
    ):
        if combiner == "mean":
            norm_backend = "recis" if backend == "auto" else backend
            weight = weight_norm_sparse(unique_emb, weight, segment_ids, num_segments, norm_backend)
        ctx.save_for_backward(weight, reverse_indices, segment_ids)
        ctx.unique_size = unique_emb.shape[0]
        return segment_sum_sparse(unique_emb, weight, reverse_indices, segment_ids, num_segments)

    @staticmethod
    def backward(ctx, grad):
        weight, reverse_indices, segment_ids = ctx.saved_tensors
        unique_grad = segment_sum_sparse(
            grad, weight, segment_ids, reverse_indices, ctx.unique_size
        )
        return unique_grad, None, None, None, None, None, None


class EmbeddingSegmentReduceRagged(torch.autograd.Function):
    """``combiner`` of ``unique_emb[reverse_indices]`` per ``offsets`` segment, in the engine.

    "sum" and "mean" (weighted: ``Σ w·e / Σ w``, zeros where the weights sum to 0) give [B, D];
    "tile" takes ``combiner_kwargs`` ``{"bs": [...], "tile_len": [...], "left_pad": [...]}``
    (see :func:`~recis.backends.torch.functional.ragged_ops.ragged_tile`).
    """

    @staticmethod
    def forward(ctx, unique_emb, weight, reverse_indices, offsets, combiner, combiner_kwargs=None):
        ctx.combiner, ctx.unique_size = combiner, unique_emb.shape[0]
        ctx.save_for_backward(weight, reverse_indices, offsets)
        with input_device(unique_emb):
            rows, index, segments, weights = _engine_segments(
                unique_emb, weight, reverse_indices, offsets
            )
            out = segment_reduce(rows, index, segments, weights, mode=combiner)
            return export_like(out, unique_emb).to(unique_emb.dtype)

    @staticmethod
    def backward(ctx, grad):
        weight, reverse_indices, offsets = ctx.saved_tensors
        with input_device(grad):
            _, index, segments, weights = _engine_segments(None, weight, reverse_indices, offsets)
            unique_grad = segment_reduce_backward(
                engine_array(grad.float(), "grad"),
                index,
                segments,
                weights,
                ctx.combiner,
                num_rows=ctx.unique_size,
            )
            return export_like(unique_grad, grad).to(grad.dtype), None, None, None, None, None


def ragged_embedding_segment_reduce(
    unique_emb, weight, reverse_indices, offsets, combiner, combiner_kwargs=None
):
    """Reduce ``unique_emb[reverse_indices]`` per ``offsets`` segment with ``combiner``
    ("sum", "mean" or "tile"; see :class:`EmbeddingSegmentReduceRagged`)."""
    if combiner not in ("sum", "mean", "tile"):
        raise AssertionError(f"combiner {combiner} is not supported")
    offsets, reverse_indices = offsets.long(), reverse_indices.long()
    if combiner == "tile":
        kwargs = combiner_kwargs or {}
        left_pad = kwargs.get("left_pad")
        left_pad = (
            torch.cat([torch.as_tensor(p).reshape(-1) for p in left_pad]) if left_pad else None
        )
        return RaggedTile.apply(
            kwargs["bs"], kwargs["tile_len"], reverse_indices, offsets, unique_emb, left_pad
        )
    return EmbeddingSegmentReduceRagged.apply(
        unique_emb, weight, reverse_indices, offsets, combiner, combiner_kwargs
    )


def sparse_embedding_segment_reduce(
    unique_emb, weight, reverse_indices, segment_ids, num_segments, combiner
):
    """Reduce ``unique_emb[reverse_indices]`` per segment id with "sum" or "mean" (weighted)."""
    if combiner not in ("sum", "mean"):
        raise AssertionError(f"combiner {combiner} is not supported")
    if weight is None:
        raise AssertionError("none weight is not supported")
    return EmbeddingSegmentReduceSparse.apply(
        unique_emb, weight, reverse_indices, segment_ids, num_segments, combiner, "auto"
    )


def merge_offsets(offsets: list[torch.Tensor], max_value=None) -> torch.Tensor:
    """Concatenate offsets, shifting each by the sizes before it (``max_value``, default each
    tensor's last offset).

    >>> merge_offsets([torch.tensor([0, 2, 5]), torch.tensor([0, 3, 6])]).tolist()
    [0, 2, 5, 8, 11]
    """
    if not offsets:
        raise ValueError("merge_offsets: expected at least one offsets tensor")
    sizes = [o[-1] for o in offsets] if max_value is None else list(torch.as_tensor(max_value))
    shift, parts = offsets[0].new_zeros(()), [offsets[0][:1]]
    for level, size in zip(offsets, sizes, strict=True):
        parts.append(level[1:] + shift)
        shift = shift + torch.as_tensor(size, dtype=level.dtype, device=level.device)
    return torch.cat(parts)


def gen_segment_indices_by_offset(offsets: torch.Tensor, count: int | None = None) -> torch.Tensor:
    """The segment of every entry of ``offsets``'s segments.

    >>> gen_segment_indices_by_offset(torch.tensor([0, 2, 5])).tolist()
    [0, 0, 1, 1, 1]
    """
    lengths = offsets[1:] - offsets[:-1]
    segments = torch.arange(lengths.numel(), device=offsets.device, dtype=offsets.dtype)
    return torch.repeat_interleave(segments, lengths, output_size=count)


def ids_partition(ids: torch.Tensor, max_partition_num: int, world_size: int):
    """Distinct ids grouped by owner rank, as RecIS shards them over ``world_size`` ranks
    (``torch.ops.recis.ids_partition``).

    An id's slice is ``|id mod 65536|`` (its low 16 bits when ``id >= 0``); rank ``r`` owns the
    ``r``-th of ``world_size`` contiguous slice ranges (the first ``65536 % world_size`` ranges
    one slice longer). Returns the
    distinct ids sorted by slice (ids sharing a slice in ``torch.argsort``'s order), the
    number of ids per rank and, per input id, its position in the distinct ids.

    >>> ids = torch.tensor([65537, 3, 40000, 3])
    >>> [t.tolist() for t in ids_partition(ids, 65536, 2)]
    [[65537, 3, 40000], [2, 1], [0, 1, 2, 1]]
    """
    if max_partition_num != SLICE_SIZE:
        raise ValueError(f"ids_partition: max_partition_num must be {SLICE_SIZE}")
    return torch.ops.recis.ids_partition(ids, world_size)


def ids_encode(ids_list: list[torch.Tensor], table_ids) -> torch.Tensor:
    """All ids in one tensor, each ``(id & (2**52 − 1)) + (table_id << 52)`` of its table."""
    return fused_ids_encode_gpu(ids_list, table_ids)


def _engine_segments(unique_emb, weight, reverse_indices, offsets):
    rows = None if unique_emb is None else engine_array(unique_emb, "unique_emb")
    weights = None if weight is None else engine_array(weight.float(), "weight")
    index = engine_array(reverse_indices.long(), "reverse_indices")
    return rows, index, engine_array(offsets.long(), "offsets"), weights


def _check_backend(backend: str, what: str) -> None:
    if backend not in _BACKENDS:
        raise RuntimeError(f"{what} only support ['recis'|'torch'] backend, got: {backend}")

"""RecIS's segment ops: embedding segment reduce forward/backward, segment ids, merged offsets.

``segment_reduce_forward(rows, weight, index, offsets, mode)`` combines ``rows[index]`` (each
scaled by its weight; None weighs 1) per segment of ``offsets``: ``"sum"``, ``"mean"`` (divided
by the segment's weight sum) or ``"tile"`` (no reduction: one weighted row per id). The sums run
in the engine's combiners (:mod:`recis.core.segment`) in float32; results have ``rows``' dtype.
The op has a registered backward (:func:`segment_reduce_backward`), so it also works in
autograd on its own.

>>> import torch
>>> rows = torch.tensor([[1.0, 2.0], [10.0, 20.0]])
>>> index, offsets = torch.tensor([0, 1, 1]), torch.tensor([0, 2, 3])
>>> torch.ops.recis.segment_reduce_forward(rows, None, index, offsets, "sum").tolist()
[[11.0, 22.0], [10.0, 20.0]]
>>> torch.ops.recis.gen_segment_indices_by_offset(offsets, 3).tolist()
[0, 0, 1]
"""

from __future__ import annotations

import torch

from recis.backends.torch.ops.registry import on_engine, recis_op

MODES = ("sum", "mean", "tile")


def _check_mode(mode: str, op: str) -> None:
    if mode not in MODES:
        raise ValueError(f"recis.{op}: mode must be one of {MODES}, got {mode!r}")


def _weights(weight, count: int, op: str):
    from recis.backends.torch.bridge import as_engine

    if weight is None:
        return None
    if weight.numel() != count:
        raise ValueError(f"recis.{op}: {weight.numel()} weights for {count} ids")
    return as_engine(weight.reshape(-1).float(), "weight")


def _forward_fake(rows, weight, index, offsets, mode):
    count = index.numel() if mode == "tile" else offsets.numel() - 1
    return rows.new_empty((count, rows.shape[1]))


@recis_op(
    "segment_reduce_forward(Tensor _0, Tensor? _1, Tensor _2, Tensor _3, str _4) -> Tensor",
    _forward_fake,
)
@on_engine
def segment_reduce_forward(rows, weight, index, offsets, mode):
    """Combine ``rows[index]`` per segment (see the module docstring)."""
    from recis.backends.torch.bridge import as_engine, as_tensor
    from recis.core import segment

    _check_mode(mode, "segment_reduce_forward")
    index = index.reshape(-1).long()
    if mode == "tile":
        picked = rows.index_select(0, index)
        return picked if weight is None else picked * weight.reshape(-1, 1).to(picked.dtype)
    weights = _weights(weight, index.numel(), "segment_reduce_forward")
    out = segment.segment_reduce(
        as_engine(rows.float(), "rows"),
        as_engine(index, "index"),
        as_engine(offsets.long(), "offsets"),
        weights,
        mode=mode,
    )
    return as_tensor(out).to(rows.dtype)


def _backward_fake(grad, weight, index, offsets, num_rows, mode):
    return grad.new_empty((num_rows, grad.shape[1]))


@recis_op(
    "segment_reduce_backward(Tensor _0, Tensor? _1, Tensor _2, Tensor _3, int _4, str _5) "
    "-> Tensor",
    _backward_fake,
)
@on_engine
def segment_reduce_backward(grad, weight, index, offsets, num_rows, mode):
    """Gradient of :func:`segment_reduce_forward` w.r.t. its ``num_rows`` rows."""
    from recis.backends.torch.bridge import as_engine, as_tensor
    from recis.core import dedupe, segment

    _check_mode(mode, "segment_reduce_backward")
    index = index.reshape(-1).long()
    weights = _weights(weight, index.numel(), "segment_reduce_backward")
    if mode == "tile":
        scaled = grad.float() if weight is None else grad.float() * weight.reshape(-1, 1).float()
        out = dedupe.sum_by_index(as_engine(scaled, "grad"), as_engine(index, "index"), num_rows)
    else:
        out = segment.segment_reduce_backward(
            as_engine(grad.float(), "grad"),
            as_engine(index, "index"),
            as_engine(offsets.long(), "offsets"),
            weights,
            mode=mode,
            num_rows=num_rows,
        )
    return as_tensor(out).to(grad.dtype)


def _reduce_setup(ctx, inputs, output):
    rows, weight, index, offsets, mode = inputs
    ctx.num_rows, ctx.mode = rows.shape[0], mode
    ctx.save_for_backward(weight, index, offsets)


def _reduce_backward(ctx, grad):
    weight, index, offsets = ctx.saved_tensors
    grad_rows = torch.ops.recis.segment_reduce_backward(
        grad.contiguous(), weight, index, offsets, ctx.num_rows, ctx.mode
    )
    return grad_rows, None, None, None, None


torch.library.register_autograd(
    "recis::segment_reduce_forward", _reduce_backward, setup_context=_reduce_setup
)


def _segment_ids_fake(offsets, total):
    return offsets.new_empty((total,))


@recis_op("gen_segment_indices_by_offset(Tensor _0, int _1) -> Tensor", _segment_ids_fake)
def gen_segment_indices_by_offset(offsets, total):
    """The segment of each of the ``total`` positions, in ``offsets``' dtype."""
    lengths = torch.diff(offsets.reshape(-1))
    segments = torch.arange(lengths.numel(), dtype=offsets.dtype, device=offsets.device)
    out = torch.repeat_interleave(segments, lengths.long(), output_size=total)
    if out.numel() != total:
        raise ValueError(f"recis.gen_segment_indices_by_offset: offsets cover {out.numel()} ids")
    return out


def _merge_fake(offsets, totals):
    size = 1 + sum(o.shape[0] - 1 for o in offsets)
    return offsets[0].new_empty((size,))


@recis_op("merge_offsets(Tensor[] _0, Tensor _1) -> Tensor", _merge_fake)
def merge_offsets(offsets, totals):
    """Chain the offsets of several ragged batches into one: batch ``k``'s offsets (without
    their leading 0) are shifted by ``totals[0] + … + totals[k-1]``, the value counts of the
    batches before it.

    >>> parts = [torch.tensor([0, 2, 5]), torch.tensor([0, 3, 6])]
    >>> torch.ops.recis.merge_offsets(parts, torch.tensor([5, 6])).tolist()
    [0, 2, 5, 8, 11]
    """
    if totals.numel() < len(offsets):
        raise ValueError(
            f"recis.merge_offsets: {totals.numel()} value counts for {len(offsets)} offsets"
        )
    starts = torch.cumsum(totals.reshape(-1).long(), 0).tolist()
    pieces = [offsets[0].reshape(-1)[:1]] + [
        part.reshape(-1)[1:] + (starts[k - 1] if k else 0) for k, part in enumerate(offsets)
    ]
    return torch.cat(pieces)

"""RecIS's sequence ops: 2-D cutoff, ragged → sparse, the tile combiner and its backward,
gathering by padded positions, real sequence lengths, and sparse segment sums and means.

>>> import torch
>>> table = torch.tensor([[1.0], [2.0]])
>>> out, shape = torch.ops.recis.ragged_tile([2], [2], torch.tensor([0, 1, 1]),
...                                          torch.tensor([0, 1, 3]), table)
>>> out[:, 0].tolist(), shape.tolist()
([1.0, 0.0, 2.0, 2.0], [[2], [2]])
>>> torch.ops.recis.ragged_tile_back(shape, [2, 1, 2, 2], torch.tensor([0, 1, 1]),
...                                  torch.tensor([0, 1, 3]), out)[:, 0].tolist()
[1.0, 4.0]
"""

from __future__ import annotations

import torch

from recis.backends.torch.ops.registry import dynamic_size, recis_op


def _cutoff_2d_fake(values, offsets, keep_lengths, drop_sides, pad_sides):
    out_values = [v.new_empty((dynamic_size(),)) for v in values]
    out_offsets = [o.new_empty(o.shape) for o in offsets]
    counts = [o.new_empty((o.shape[0] - 1,), dtype=torch.int32) for o in offsets]
    return out_values, out_offsets, counts, [c.new_empty(c.shape) for c in counts]


@recis_op(
    "fused_ragged_cutoff_2D(Tensor[] _0, Tensor[] _1, Tensor _2, Tensor _3, Tensor _4) "
    "-> (Tensor[], Tensor[], Tensor[], Tensor[])",
    _cutoff_2d_fake,
)
def fused_ragged_cutoff_2D(values, offsets, keep_lengths, drop_sides, pad_sides):
    """Cut every row to its keep length: values, offsets, drop counts and pad counts per input."""
    from recis.backends.torch.functional import ragged_ops

    out = ragged_ops.fused_ragged_cutoff_2D(
        list(values), list(offsets), keep_lengths, drop_sides, pad_sides
    )
    return out[0], out[1], out[2], out[3]


def _ragged_to_sparse_fake(values, row_splits):
    raise NotImplementedError("recis.ragged_to_sparse returns a sparse tensor: not traceable")


@recis_op("ragged_to_sparse(Tensor _0, Tensor[] _1) -> Tensor", _ragged_to_sparse_fake)
def ragged_to_sparse(values, row_splits):
    """The ragged tensor as a coalesced sparse COO tensor of its dense shape."""
    from recis.backends.torch.functional import ragged_ops

    return ragged_ops.ragged_to_sparse(values, list(row_splits))


def _tile_fake(batch, seq, indices, offset, table, left_pad=None):
    rows = sum(b * s for b, s in zip(batch, seq, strict=True))
    return [
        table.new_empty((rows, table.shape[1])),
        table.new_empty((2, len(batch)), dtype=torch.int64),
    ]


@recis_op(
    "ragged_tile(int[] _0, int[] _1, Tensor _2, Tensor _3, Tensor _4, Tensor? _5=None) -> Tensor[]",
    _tile_fake,
)
def ragged_tile(batch, seq, indices, offset, table, left_pad=None):
    """The tile combiner: ``[Σ batch[g]·seq[g], dim]`` rows, and the ``[2, M]`` int64 tensor of
    ``batch`` and ``seq`` that :func:`ragged_tile_back` takes."""
    from recis.backends.torch.functional.ragged_ops import ragged_tile as tile

    out = tile(list(batch), list(seq), indices, offset, table, left_pad)
    return [out, torch.tensor([list(batch), list(seq)], dtype=torch.int64, device=table.device)]


@recis_op(
    "ragged_tile_back(Tensor _0, int[] _1, Tensor _2, Tensor _3, Tensor _4, Tensor? _5=None) "
    "-> Tensor",
    lambda batch_seq, info, indices, offset, dy, left_pad=None: dy.new_empty(
        (info[0], dy.shape[1])
    ),
)
def ragged_tile_back(batch_seq, batch_info, indices, offset, dy, left_pad=None):
    """Gradient of :func:`ragged_tile` w.r.t. the table (``batch_info[0]`` rows): each tiled
    row's gradient added to the table row it came from."""
    from recis.backends.torch.functional.ragged_ops import _tile_positions

    batch, seq = batch_seq.tolist()
    sources, targets, _ = _tile_positions(batch, seq, offset, left_pad, dy.device)
    dx = dy.new_zeros((batch_info[0], dy.shape[1]))
    return dx.index_add_(0, indices.to(dy.device)[sources].long(), dy[targets])


def _gather_fake(drop_num, drop_side, pad_num, pad_side, padded, rows, offsets, values):
    count = padded.shape[0] * padded.shape[1]
    return (
        [v.new_empty((count,)) for v in values],
        [v.new_empty((count,), dtype=torch.bool) for v in values],
    )


@recis_op(
    "gather_ragged_by_padded_index(Tensor _0, Tensor _1, Tensor _2, Tensor _3, Tensor _4, "
    "Tensor _5, Tensor[] _6, Tensor[] _7) -> (Tensor[], Tensor[])",
    _gather_fake,
)
def gather_ragged_by_padded_index(
    drop_num, drop_side, pad_num, pad_side, padded_indices, src_row_indices, offsets, values
):
    """Values at padded positions of chosen rows, with their validity masks."""
    from recis.backends.torch.functional import padded_index

    return padded_index.gather_ragged_by_padded_index(
        drop_num, drop_side, pad_num, pad_side, padded_indices, src_row_indices, offsets, values
    )


@recis_op(
    "compute_real_length(Tensor _0, Tensor[] _1, Tensor _2, Tensor[] _3, int _4) -> Tensor",
    lambda iv, io, sv, so, n: iv.new_empty((io[0].shape[0] - 1,), dtype=torch.float32),
)
def compute_real_length(item_values, item_offsets, seller_values, seller_offsets, num_ragged_dim):
    """Per sample, the positions where the item and the seller both hold a value."""
    from recis.backends.torch.functional.real_length import real_length

    return real_length(
        item_values, list(item_offsets), seller_values, list(seller_offsets), num_ragged_dim
    )


@recis_op(
    "segment_sum(Tensor _0, Tensor? _1, Tensor _2, Tensor _3, int _4) -> Tensor",
    lambda data, weight, indices, segments, n: data.new_empty((n, data.shape[-1])),
)
def segment_sum(data, weight, indices, segment_ids, num_segments):
    """``out[s] = Σ weight[i]·data[indices[i]]`` over the ``i`` of segment ``s``."""
    from recis.backends.torch.functional.embedding_ops import segment_sum_sparse

    return segment_sum_sparse(data, weight, indices, segment_ids, num_segments)


@recis_op(
    "segment_mean(Tensor? _0, Tensor? _1, Tensor _2, int _3) -> Tensor",
    lambda data, weight, segments, n: segments.new_empty(segments.shape, dtype=torch.float32),
)
def segment_mean(data, weight, segment_ids, num_segments):
    """Each weight divided by its segment's weight sum (the weights of a ``mean``)."""
    from recis.backends.torch.functional.embedding_ops import weight_norm_sparse

    return weight_norm_sparse(data, weight, segment_ids, num_segments)

"""Row blocks: RecIS's block gather / insert / filter, dense gather and block AdamW-TF ops.

A table's rows live in a list of equal blocks, each ``[block_size, dim]``; row ``r`` is row
``r % block_size`` of block ``r // block_size``. The kernels work block by block with torch
indexing, on whichever device the tensors are.

>>> import torch
>>> blocks = [torch.arange(6.0).reshape(3, 2), torch.zeros(3, 2)]
>>> torch.ops.recis.block_gather(torch.tensor([1, 3]), blocks, 3, -1, False).tolist()
[[2.0, 3.0], [0.0, 0.0]]
>>> torch.ops.recis.block_insert(torch.tensor([4]), torch.ones(1, 2), blocks, 3)
>>> blocks[1][1].tolist()
[1.0, 1.0]
"""

from __future__ import annotations

import math

import torch

from recis.backends.torch.ops.registry import recis_op


def _by_block(rows: torch.Tensor, block_size: int):
    """``(block, positions, rows within the block)`` for each block that ``rows`` touch."""
    if block_size <= 0:
        raise ValueError(f"block_size must be positive, got {block_size}")
    blocks = torch.div(rows, block_size, rounding_mode="floor")
    for block in torch.unique(blocks).tolist():
        positions = torch.nonzero(blocks == block).flatten()
        yield block, positions, rows[positions] - block * block_size


def _check_rows(rows: torch.Tensor, op: str) -> torch.Tensor:
    if rows.dtype != torch.int64:
        raise TypeError(f"recis.{op}: row ids must be int64, got {rows.dtype}")
    return rows.reshape(-1)


def _block_gather_fake(ids, blocks, block_size, default_key, readonly):
    return blocks[0].new_empty((ids.numel(), blocks[0].shape[1]))


@recis_op(
    "block_gather(Tensor _0, Tensor[] _1, int _2, int _3, bool _4) -> Tensor", _block_gather_fake
)
def block_gather(ids, blocks, block_size, default_key, readonly):
    """Rows ``ids`` of the blocks, ``[n, dim]``; with ``readonly``, ids equal to ``default_key``
    give zero rows."""
    ids = _check_rows(ids, "block_gather")
    out = blocks[0].new_zeros((ids.numel(), blocks[0].shape[1]))
    keep = ids != default_key if readonly else torch.ones_like(ids, dtype=torch.bool)
    kept = torch.nonzero(keep).flatten()
    for block, positions, rows in _by_block(ids[kept], block_size):
        out[kept[positions]] = blocks[block][rows]
    return out


def _gather_fake(ids, emb):
    return emb.new_empty((ids.numel(), emb.shape[1]))


@recis_op("gather(Tensor _0, Tensor _1) -> Tensor", _gather_fake)
def gather(ids, emb):
    """Rows ``ids`` of the matrix ``emb``, ``[n, dim]``."""
    return emb.index_select(0, _check_rows(ids, "gather"))


def _gather_backward(ctx, grad):
    ids, num_rows = ctx.ids, ctx.num_rows
    grad_emb = grad.new_zeros((num_rows, grad.shape[1])).index_add_(0, ids.reshape(-1), grad)
    return None, grad_emb


def _gather_setup(ctx, inputs, output):
    ctx.ids, ctx.num_rows = inputs[0], inputs[1].shape[0]


torch.library.register_autograd("recis::gather", _gather_backward, setup_context=_gather_setup)


def _insert_fake(ids, embedding, blocks, block_size):
    return None


@recis_op("block_insert(Tensor _0, Tensor _1, Tensor(a!)[] _2, int _3) -> ()", _insert_fake)
def block_insert(ids, embedding, blocks, block_size):
    """Write ``embedding[i]`` (or its single row, broadcast) to row ``ids[i]``; id -1 is
    skipped."""
    ids = _check_rows(ids, "block_insert")
    if embedding.shape[0] not in (ids.numel(), 1):
        raise ValueError(
            f"recis.block_insert: embedding has {embedding.shape[0]} rows for {ids.numel()} ids"
        )
    if bool((ids < -1).any()):
        raise ValueError("recis.block_insert: row ids must be >= -1")
    _scatter(ids, embedding, ids >= 0, blocks, block_size)


def _insert_masked_fake(ids, embedding, mask, blocks, block_size):
    return None


@recis_op(
    "block_insert_with_mask(Tensor _0, Tensor _1, Tensor _2, Tensor(a!)[] _3, int _4) -> ()",
    _insert_masked_fake,
)
def block_insert_with_mask(ids, embedding, mask, blocks, block_size):
    """:func:`block_insert` of the positions where ``mask`` is true."""
    ids = _check_rows(ids, "block_insert_with_mask")
    _scatter(ids, embedding, mask.reshape(-1).to(torch.bool), blocks, block_size)


def _scatter(ids, embedding, keep, blocks, block_size):
    kept = torch.nonzero(keep).flatten()
    source = embedding.expand(ids.numel(), -1) if embedding.shape[0] == 1 else embedding
    for block, positions, rows in _by_block(ids[kept], block_size):
        blocks[block][rows] = source[kept[positions]].to(blocks[block].dtype)


def _filter_fake(ids, blocks, block_size, threshold):
    return ids.new_empty((ids.numel(),), dtype=torch.bool)


@recis_op("block_filter(Tensor _0, Tensor[] _1, int _2, int _3) -> Tensor", _filter_fake)
def block_filter(ids, blocks, block_size, threshold):
    """Per id, whether the first column of its row (a step or count slot) is below
    ``threshold``."""
    ids = _check_rows(ids, "block_filter")
    out = torch.zeros(ids.numel(), dtype=torch.bool, device=ids.device)
    for block, positions, rows in _by_block(ids, block_size):
        values = blocks[block].reshape(blocks[block].shape[0], -1)[rows, 0]
        out[positions] = values < threshold
    return out


def _adamw_fake(*args):
    return None


@recis_op(
    "block_apply_adamw(Tensor _0, Tensor _1, Tensor(a!)[] _2, Tensor(b!) _3, Tensor(c!) _4, "
    "Tensor _5, Tensor(d!)[] _6, Tensor(e!)[] _7, float _8, float _9, float _10, float _11, "
    "float _12, int _13) -> ()",
    _adamw_fake,
)
def block_apply_adamw(
    ids, grad, blocks, beta1_power, beta2_power, step, exp_avg, exp_avg_sq, *hyper
):
    """RecIS's AdamW-TF step on rows ``ids`` (id -1 skipped), in place.

    ``hyper`` is ``(lr, beta1, beta2, decay, eps, block_size)``; ``decay`` multiplies the row
    before the update (RecIS passes ``1 - lr·weight_decay``). ``beta1_power``/``beta2_power``
    (one element each) are multiplied by ``beta1``/``beta2`` first; then with
    ``alpha = -lr·sqrt(1 - beta2_power) / (1 - beta1_power)``:
    ``m = β1·m + (1-β1)·g``, ``v = β2·v + (1-β2)·g²``, ``row = row·decay + alpha·m/(√v + eps)``.
    ``step`` is read by RecIS's kernel but not changed.
    """
    lr, beta1, beta2, decay, eps, block_size = hyper
    ids = _check_rows(ids, "block_apply_adamw")
    if bool((ids < -1).any()):
        raise ValueError("recis.block_apply_adamw: row ids must be >= -1")
    beta1_power.mul_(beta1)
    beta2_power.mul_(beta2)
    b1, b2 = float(beta1_power.reshape(-1)[0]), float(beta2_power.reshape(-1)[0])
    alpha = -lr / (1 - b1) * math.sqrt(1 - b2)
    kept = torch.nonzero(ids >= 0).flatten()
    grad = grad.reshape(ids.numel(), -1).double()
    for block, positions, rows in _by_block(ids[kept], block_size):
        g = grad[kept[positions]]
        m = exp_avg[block][rows].double() * beta1 + g * (1 - beta1)
        v = exp_avg_sq[block][rows].double() * beta2 + (1 - beta2) * g * g
        row = blocks[block][rows].double() * decay + alpha * (m / (v.sqrt() + eps))
        exp_avg[block][rows] = m.to(exp_avg[block].dtype)
        exp_avg_sq[block][rows] = v.to(exp_avg_sq[block].dtype)
        blocks[block][rows] = row.to(blocks[block].dtype)

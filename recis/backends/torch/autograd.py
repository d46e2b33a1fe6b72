"""Autograd functions of the embedding path: row lookup and the ragged combiners.

:func:`lookup_rows` turns looked-up table rows into a tensor whose gradient, in backward, goes to
the table's gradient buffer (the sparse optimizer applies it later). :func:`combine` reduces each
sample's ids to one activation with the engine's fused gather + segment reduction. Engine arrays
are NumPy (CPU tensors) or CuPy (CUDA tensors, computed on torch's current stream); the tensors
share their memory (:mod:`recis.backends.torch.bridge`).

>>> import numpy as np, torch
>>> values = torch.tensor([[1.0, 2.0], [10.0, 20.0]], requires_grad=True)
>>> out = combine(values, np.array([0, 1, 1]), np.array([0, 2, 3]), None, "sum")
>>> out.tolist()
[[11.0, 22.0], [10.0, 20.0]]
>>> out.sum().backward(); values.grad.tolist()
[[1.0, 1.0], [2.0, 2.0]]
"""

from __future__ import annotations

import numpy as np
import torch

from recis.backends.torch.bridge import as_engine, as_tensor, beside_torch
from recis.core.segment import segment_reduce, segment_reduce_backward
from recis.core.table import EmbeddingTable
from recis.distributed.exchange import LookupReply, ShardedTable


def _row_gradients(grad: torch.Tensor, grad_scale):
    """The gradient w.r.t. looked-up rows as an engine array, each row scaled if asked."""
    grad = as_engine(grad.float(), "gradient")
    return grad if grad_scale is None else grad * grad_scale[:, None]


class _LookupRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, trigger, values, table, rows, grad_scale):
        ctx.table, ctx.rows, ctx.grad_scale = table, rows, grad_scale
        return as_tensor(values)

    @staticmethod
    @beside_torch
    def backward(ctx, grad):
        ctx.table.grads.add(ctx.rows, _row_gradients(grad, ctx.grad_scale), distinct=True)
        return None, None, None, None, None


def lookup_rows(
    trigger: torch.Tensor,
    values: np.ndarray,
    table: EmbeddingTable,
    rows: np.ndarray,
    grad_scale: np.ndarray | None = None,
) -> torch.Tensor:
    """``values`` [U, D] (an engine array) as a tensor whose gradient is added to
    ``table.grads`` at ``rows``.

    ``trigger`` is a tensor that requires grad (it makes autograd run the backward);
    ``grad_scale`` optionally scales each row's gradient (e.g. 1 / occurrences).
    """
    return _LookupRows.apply(trigger, values, table, rows, grad_scale)


class _ShardRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, trigger, shard, reply, grad_scale):
        ctx.shard, ctx.reply, ctx.grad_scale = shard, reply, grad_scale
        return as_tensor(reply.values)

    @staticmethod
    @beside_torch
    def backward(ctx, grad):
        ctx.shard.add_gradients(ctx.reply, _row_gradients(grad, ctx.grad_scale))
        return None, None, None, None


def shard_rows(
    trigger: torch.Tensor,
    shard: ShardedTable,
    reply: LookupReply,
    grad_scale: np.ndarray | None = None,
) -> torch.Tensor:
    """The rows of a sharded lookup as a tensor whose gradient, in backward, is recorded for the
    owners of the rows (:meth:`ShardedTable.add_gradients`); see :func:`lookup_rows`."""
    return _ShardRows.apply(trigger, shard, reply, grad_scale)


class _Combine(torch.autograd.Function):
    @staticmethod
    @beside_torch
    def forward(ctx, values, index, offsets, weights, mode, tile_len):
        rows = as_engine(values, "values")
        out = segment_reduce(rows, index, offsets, weights, mode, tile_len)
        ctx.save = (index, offsets, weights, mode, tile_len, values.shape[0])
        return as_tensor(out)

    @staticmethod
    @beside_torch
    def backward(ctx, grad_out):
        index, offsets, weights, mode, tile_len, num_rows = ctx.save
        grad = as_engine(grad_out.float(), "gradient")
        grad_rows = segment_reduce_backward(
            grad, index, offsets, weights, mode, num_rows=num_rows, tile_len=tile_len
        )
        return as_tensor(grad_rows), None, None, None, None, None


def combine(
    values: torch.Tensor,
    index: np.ndarray,
    offsets: np.ndarray,
    weights: np.ndarray | None,
    mode: str,
    tile_len: int | None = None,
) -> torch.Tensor:
    """Combine rows ``values[index[i]]`` per segment of ``offsets`` (sum, mean or tile).

    ``index``, ``offsets`` and ``weights`` are engine arrays on the device of ``values``.
    """
    return _Combine.apply(values, index, offsets, weights, mode, tile_len)

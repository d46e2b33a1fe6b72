"""RecIS's import path for :mod:`recis.backends.torch.functional.sparse_grad_group_ops`."""

from recis.backends.torch.functional.sparse_grad_group_ops import (
    GROUP_REDUCE_IMPLS,
    GROUP_REDUCE_MODES,
    _sparse_grad_group_reduce,
    _sparse_grad_group_reduce_chunk_compact,
    _sparse_grad_group_reduce_compact,
    _sparse_grad_group_reduce_dense,
)

__all__ = [
    "GROUP_REDUCE_IMPLS",
    "GROUP_REDUCE_MODES",
    "_sparse_grad_group_reduce",
    "_sparse_grad_group_reduce_chunk_compact",
    "_sparse_grad_group_reduce_compact",
    "_sparse_grad_group_reduce_dense",
]

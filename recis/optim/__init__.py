"""Optimizers: sparse ones for hash tables, and RecIS's TF-style AdamW for dense parameters."""

from recis.backends.torch.optim.adamw_tf import AdamWTF
from recis.backends.torch.optim.sparse_adagrad_sum import SparseAdagradSum
from recis.backends.torch.optim.sparse_optimizer import SparseOptimizer
from recis.backends.torch.optim.sparse_optimizers import (
    SparseAdagrad,
    SparseAdam,
    SparseAdamW,
    SparseAdamWTF,
    SparseFtrl,
    SparseRowwiseAdagrad,
    SparseSGD,
)

SparseRowWiseAdagrad = SparseRowwiseAdagrad

__all__ = [
    "AdamWTF",
    "SparseAdagrad",
    "SparseAdagradSum",
    "SparseAdam",
    "SparseAdamW",
    "SparseAdamWTF",
    "SparseFtrl",
    "SparseOptimizer",
    "SparseRowWiseAdagrad",
    "SparseRowwiseAdagrad",
    "SparseSGD",
]

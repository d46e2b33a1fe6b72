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
from recis.backends.torch.optim.sparse_row_wise_adagrad import (
    SparseRowWiseAdagrad,
    SparseRowWiseAdagradSum,
)

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
    "SparseRowWiseAdagradSum",
    "SparseRowwiseAdagrad",
    "SparseSGD",
]

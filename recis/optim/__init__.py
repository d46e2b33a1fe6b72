"""Optimizers: sparse ones for hash tables, and RecIS's TF-style AdamW for dense parameters."""

from recis.optim.adamw_tf import AdamWTF
from recis.optim.sparse_optim import SparseOptimizer
from recis.optim.sparse_optimizers import (
    SparseAdagrad,
    SparseAdam,
    SparseAdamW,
    SparseAdamWTF,
    SparseFtrl,
    SparseRowwiseAdagrad,
    SparseSGD,
)

__all__ = [
    "AdamWTF",
    "SparseAdagrad",
    "SparseAdam",
    "SparseAdamW",
    "SparseAdamWTF",
    "SparseFtrl",
    "SparseOptimizer",
    "SparseRowwiseAdagrad",
    "SparseSGD",
]

"""RecIS's import path for :mod:`recis.backends.torch.optim.sparse_optimizer`."""

from recis.backends.torch.optim.sparse_optimizer import SparseOptimizer

__all__ = ["SparseOptimizer"]

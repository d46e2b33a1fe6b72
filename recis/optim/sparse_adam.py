"""RecIS's import path for :mod:`recis.backends.torch.optim.sparse_optimizers`."""

from recis.backends.torch.optim.sparse_optimizers import SparseAdam

__all__ = ["SparseAdam"]

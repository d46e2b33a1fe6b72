"""RecIS's import path for :mod:`recis.backends.torch.optim.sparse_optimizers`."""

from recis.backends.torch.optim.sparse_optimizers import SparseAdamWTF

__all__ = ["SparseAdamWTF"]

"""RecIS's import path for :mod:`recis.backends.torch.optim.sparse_adagrad_sum`."""

from recis.backends.torch.optim.sparse_adagrad_sum import SparseAdagradSum

__all__ = ["SparseAdagradSum"]

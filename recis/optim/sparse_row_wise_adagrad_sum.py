"""RecIS's import path for :class:`SparseRowWiseAdagradSum`
(:mod:`recis.backends.torch.optim.sparse_row_wise_adagrad`)."""

from recis.backends.torch.optim.sparse_row_wise_adagrad import SparseRowWiseAdagradSum

__all__ = ["SparseRowWiseAdagradSum"]

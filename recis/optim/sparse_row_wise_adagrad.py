"""RecIS's import path for row-wise Adagrad (RecIS spells it ``SparseRowWiseAdagrad``)."""

from recis.backends.torch.optim.sparse_optimizers import SparseRowwiseAdagrad

SparseRowWiseAdagrad = SparseRowwiseAdagrad

__all__ = ["SparseRowWiseAdagrad", "SparseRowwiseAdagrad"]

"""RecIS's import path for row-wise Adagrad with RecIS's signature
(:mod:`recis.backends.torch.optim.sparse_row_wise_adagrad`); ``SparseRowwiseAdagrad`` is this
package's own signature."""

from recis.backends.torch.optim.sparse_optimizers import SparseRowwiseAdagrad
from recis.backends.torch.optim.sparse_row_wise_adagrad import SparseRowWiseAdagrad

__all__ = ["SparseRowWiseAdagrad", "SparseRowwiseAdagrad"]

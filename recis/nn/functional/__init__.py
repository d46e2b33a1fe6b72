"""Functions joining torch to the engine's embedding pipeline."""

from recis.backends.torch.autograd import embed, rows_tensor
from recis.backends.torch.bridge import as_engine, as_tensor, beside_torch

__all__ = ["as_engine", "as_tensor", "beside_torch", "embed", "rows_tensor"]

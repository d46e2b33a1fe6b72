"""Autograd functions joining torch to the engine's embedding kernels."""

from recis.backends.torch.autograd import combine, lookup_rows, shard_rows
from recis.backends.torch.bridge import as_engine, as_tensor, beside_torch

__all__ = ["as_engine", "as_tensor", "beside_torch", "combine", "lookup_rows", "shard_rows"]

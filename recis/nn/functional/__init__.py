"""Autograd functions joining torch to the engine's embedding kernels."""

from recis.nn.functional.embedding_ops import combine, lookup_rows, shard_rows
from recis.nn.functional.engine_calls import as_engine, as_tensor, beside_torch

__all__ = ["as_engine", "as_tensor", "beside_torch", "combine", "lookup_rows", "shard_rows"]

"""Autograd functions joining torch to the engine's embedding kernels."""

from recis.nn.functional.embedding_ops import combine, lookup_rows

__all__ = ["combine", "lookup_rows"]

"""RecIS's import path for :mod:`recis.backends.torch.embedding_engine`."""

from recis.backends.torch.embedding_engine import (
    EmbeddingEngine,
)

__all__ = [
    "EmbeddingEngine",
]

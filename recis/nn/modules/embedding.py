"""RecIS's import path for :mod:`recis.backends.torch.embedding`."""

from recis.backends.torch.embedding import (
    DynamicEmbedding,
    EmbeddingOption,
    autocast_output,
    make_request,
)

__all__ = [
    "DynamicEmbedding",
    "EmbeddingOption",
    "autocast_output",
    "make_request",
]

"""RecIS's import path for :mod:`recis.backends.torch.embedding`."""

from recis.backends.torch.embedding import (
    DynamicEmbedding,
    EmbeddingOption,
    autocast_output,
    make_request,
)
from recis.backends.torch.no_reduce import NoReduceEmbedding

__all__ = [
    "DynamicEmbedding",
    "EmbeddingOption",
    "NoReduceEmbedding",
    "autocast_output",
    "make_request",
]

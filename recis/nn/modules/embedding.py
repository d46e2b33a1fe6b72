"""RecIS's import path for :mod:`recis.backends.torch.embedding`."""

from recis.backends.torch.embedding import (
    DynamicEmbedding,
    EmbeddingOption,
    combine_segments,
    make_request,
    shape_output,
)

__all__ = [
    "DynamicEmbedding",
    "EmbeddingOption",
    "combine_segments",
    "make_request",
    "shape_output",
]

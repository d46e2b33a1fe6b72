"""RecIS's embedding layer for PyTorch: growable hash-table embeddings over the engine."""

from recis.nn.modules import (
    DynamicEmbedding,
    EmbeddingEngine,
    EmbeddingOption,
    HashTable,
    filter_out_sparse_param,
)

__all__ = [
    "DynamicEmbedding",
    "EmbeddingEngine",
    "EmbeddingOption",
    "HashTable",
    "filter_out_sparse_param",
]

"""Torch modules of the embedding layer."""

from recis.backends.torch.embedding import DynamicEmbedding, EmbeddingOption
from recis.backends.torch.embedding_engine import EmbeddingEngine
from recis.backends.torch.hashtable import HashTable, filter_out_sparse_param

__all__ = [
    "DynamicEmbedding",
    "EmbeddingEngine",
    "EmbeddingOption",
    "HashTable",
    "filter_out_sparse_param",
]

"""Torch modules of the embedding layer."""

from recis.nn.modules.embedding import DynamicEmbedding, EmbeddingOption
from recis.nn.modules.embedding_engine import EmbeddingEngine
from recis.nn.modules.hashtable import HashTable, filter_out_sparse_param

__all__ = [
    "DynamicEmbedding",
    "EmbeddingEngine",
    "EmbeddingOption",
    "HashTable",
    "filter_out_sparse_param",
]

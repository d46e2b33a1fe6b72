"""RecIS's import path for :mod:`recis.backends.torch.hashtable`."""

from recis.backends.torch.hashtable import (
    HashTable,
    filter_out_sparse_param,
    live_hashtables,
    storage_dtype,
    table_device,
)

__all__ = [
    "HashTable",
    "filter_out_sparse_param",
    "live_hashtables",
    "storage_dtype",
    "table_device",
]

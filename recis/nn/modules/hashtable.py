"""RecIS's import path for :mod:`recis.backends.torch.hashtable`."""

from recis.backends.torch.hashtable import (
    HashTable,
    filter_out_sparse_param,
    filter_out_trainable_sparse_param,
    live_hashtables,
    storage_dtype,
    table_device,
)
from recis.backends.torch.hashtable_state import is_hashtable, split_sparse_dense_state_dict
from recis.distributed.slices import Slice, gen_slice
from recis.embedding.hook_factory import HashtableHookFactory
from recis.embedding.table_register import HashtableRegister

__all__ = [
    "HashTable",
    "HashtableHookFactory",
    "HashtableRegister",
    "Slice",
    "filter_out_sparse_param",
    "filter_out_trainable_sparse_param",
    "gen_slice",
    "is_hashtable",
    "live_hashtables",
    "split_sparse_dense_state_dict",
    "storage_dtype",
    "table_device",
]

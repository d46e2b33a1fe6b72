"""RecIS's split of a state dict into hash tables (sparse) and everything else (dense).

A RecIS model's ``state_dict()`` holds its hash tables as entries; this package's
``state_dict()`` does not (tables are saved by :mod:`recis.serialize`). A dict that does hold
tables — built by hand, or from :func:`~recis.backends.torch.hashtable.filter_out_sparse_param`
merged with a state dict — is split the same way.

>>> import torch
>>> sparse, dense = split_sparse_dense_state_dict({"w": torch.zeros(1)})
>>> sparse, list(dense)
({}, ['w'])
"""

from __future__ import annotations

from recis.backends.torch.hashtable import HashTable


def is_hashtable(obj) -> bool:
    """Whether ``obj`` is a hash table: a :class:`HashTable` or an object RecIS tags as one."""
    return isinstance(obj, HashTable) or hasattr(obj, "hashtable_tag")


def split_sparse_dense_state_dict(state_dict: dict) -> tuple[dict, dict]:
    """``(sparse, dense)``: the hash tables moved out of ``state_dict`` (which, as in RecIS, is
    changed in place and returned as the dense part)."""
    sparse = {key: value for key, value in state_dict.items() if is_hashtable(value)}
    for key in sparse:
        del state_dict[key]
    return sparse, state_dict

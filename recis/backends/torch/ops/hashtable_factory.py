"""``torch.ops.recis.make_hashtable``: RecIS's factory of a hash table's implementation object.

RecIS's ``HashTable`` builds its C++ table with ``torch.ops.recis.make_hashtable(block_size,
embedding_shape, dtype, device, coalesced, children, initializer, slice_begin, slice_end,
slice_size[, use_pinned_memory])``; here the same call gives a table of this package's
:class:`~recis.backends.torch.hashtable.HashTable`, seen as RecIS's implementation object
(:class:`~recis.backends.torch.hashtable_access.HashtableImpl`: ``insert``, ``embedding_lookup``,
``accept_grad``, ``grad``, ``ids``, ``embs``, ``clear``…). The result is a Python object, not a
TorchScript class, so this op is a Python function on the ``torch.ops.recis`` namespace rather
than a ``torch.library`` op (a schema cannot return a class defined in Python). The slice
arguments are accepted and unused (tables are sharded by a hash of (table, id)), as is
``use_pinned_memory``.

>>> import torch
>>> from recis.nn.initializers import ConstantInitializer
>>> impl = torch.ops.recis.make_hashtable(
...     1024, [4], torch.float32, "cpu", False, ["item_emb"], ConstantInitializer(init_val=0.5),
...     0, 65536, 65536)
>>> rows, values = impl.embedding_lookup(torch.tensor([7, 8, 7]))
>>> rows.tolist(), values[:, 0].tolist()
([0, 1, 0], [0.5, 0.5, 0.5])
"""

from __future__ import annotations

import torch


def make_hashtable(
    block_size: int,
    embedding_shape,
    dtype: torch.dtype,
    device,
    coalesced: bool,
    children: list[str],
    initializer,
    slice_begin: int = 0,
    slice_end: int = 65536,
    slice_size: int = 65536,
    use_pinned_memory: bool = False,
):
    """A new table's implementation object (see the module docstring)."""
    from recis.backends.torch.hashtable import HashTable

    name = children[0] if children else "hashtable"
    table = HashTable(
        list(embedding_shape),
        block_size=block_size,
        dtype=dtype,
        device=device,
        coalesced=coalesced,
        children=list(children) if children else None,
        initializer=initializer,
        name=name,
    )
    return table._hashtable_impl


torch.ops.recis.make_hashtable = make_hashtable

"""RecIS's id-allocator and masking ops: generate/free row ids, mask key index, scatter ids.

A free list of row ids lives in blocks of ``free_block_size`` int64 slots; ``free_count`` of
them are in use. ``generate_ids`` takes ``n`` ids from the end of the free list, then new ids
counting down from ``cur_count + n - free_count - 1`` to ``cur_count``; ``free_ids`` appends ids
to it.

>>> import torch
>>> free = [torch.tensor([7, 9, 0, 0])]
>>> torch.ops.recis.generate_ids(3, free, 2, 10, 4).tolist()
[10, 7, 9]
>>> torch.ops.recis.free_ids(torch.tensor([3]), free, 2, 4)
>>> free[0].tolist()
[7, 9, 3, 0]
"""

from __future__ import annotations

import torch

from recis.backends.torch.ops.registry import recis_op


def _slots(positions: torch.Tensor, blocks: list[torch.Tensor], block_size: int):
    """``(block, which positions, slots within the block)`` per free-list block touched."""
    which = torch.div(positions, block_size, rounding_mode="floor")
    for block in torch.unique(which).tolist():
        chosen = torch.nonzero(which == block).flatten()
        yield blocks[block], chosen, positions[chosen] - block * block_size


def _generate_fake(count, free_blocks, free_count, cur_count, free_block_size):
    return free_blocks[0].new_empty((count,), dtype=torch.int64)


@recis_op("generate_ids(int _0, Tensor[] _1, int _2, int _3, int _4) -> Tensor", _generate_fake)
def generate_ids(count, free_blocks, free_count, cur_count, free_block_size):
    """``count`` row ids: reused ones from the free list first, then new ones."""
    device = free_blocks[0].device
    position = torch.arange(count, dtype=torch.int64, device=device) + (free_count - count)
    out = cur_count - (position + 1)
    reused = torch.nonzero(position >= 0).flatten()
    for block, chosen, slots in _slots(position[reused], free_blocks, free_block_size):
        out[reused[chosen]] = block[slots]
    return out


def _free_fake(ids, free_blocks, free_count, free_block_size):
    return None


@recis_op("free_ids(Tensor _0, Tensor(a!)[] _1, int _2, int _3) -> ()", _free_fake)
def free_ids(ids, free_blocks, free_count, free_block_size):
    """Append ``ids`` to the free list after its first ``free_count`` slots."""
    ids = ids.reshape(-1)
    positions = torch.arange(ids.numel(), dtype=torch.int64, device=ids.device) + free_count
    for block, chosen, slots in _slots(positions, free_blocks, free_block_size):
        block[slots] = ids[chosen]


def _mask_key_index_fake(keys, mask, out_position, out_size):
    return keys.new_empty((out_size,), dtype=torch.int64), keys.new_empty(
        (out_size,), dtype=torch.int64
    )


@recis_op(
    "mask_key_index(Tensor _0, Tensor _1, Tensor _2, int _3) -> (Tensor, Tensor)",
    _mask_key_index_fake,
)
def mask_key_index(keys, mask, out_position, out_size):
    """Compact the masked keys: for each ``i`` with ``mask[i]``, slot ``out_position[i] - 1``
    (an inclusive running count of the mask) gets ``keys[i]`` and ``i``; other slots are 0.

    >>> keys, mask = torch.tensor([5, 6, 7]), torch.tensor([True, False, True])
    >>> [t.tolist() for t in torch.ops.recis.mask_key_index(keys, mask, mask.cumsum(0), 2)]
    [[5, 7], [0, 2]]
    """
    out_keys = torch.zeros(out_size, dtype=torch.int64, device=keys.device)
    out_index = torch.zeros_like(out_keys)
    chosen = torch.nonzero(mask.reshape(-1)).flatten()
    slots = out_position.reshape(-1)[chosen] - 1
    out_keys[slots] = keys.reshape(-1)[chosen]
    out_index[slots] = chosen
    return out_keys, out_index


def _scatter_fake(out_ids, ids, positions):
    return torch.empty_like(out_ids)


@recis_op("scatter_ids_with_mask(Tensor(a!) _0, Tensor _1, Tensor _2) -> Tensor", _scatter_fake)
def scatter_ids_with_mask(out_ids, ids, positions):
    """``out_ids[positions[i]] = ids[i]`` in place; returns a copy of ``out_ids`` (RecIS returns
    ``out_ids`` itself, but an op that returns an input cannot run under ``torch.compile``).

    >>> out = torch.zeros(4, dtype=torch.int64)
    >>> torch.ops.recis.scatter_ids_with_mask(out, torch.tensor([8, 9]), torch.tensor([3, 0]))
    tensor([9, 0, 0, 8])
    """
    if ids.numel() and out_ids.numel():
        out_ids.view(-1)[positions.reshape(-1)] = ids.reshape(-1)
    return out_ids.clone()

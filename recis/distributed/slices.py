"""RecIS's key-space slices: the 65536 slices of an id (its low 16 bits) split over shards.

Shard ``i`` of ``n`` gets a contiguous range of slices; the first ``slice_size % n`` shards get one
slice more than the others. (This engine shards rows by a hash of (table, id) instead; the slices
describe RecIS's layout, e.g. for :func:`ids_partition
<recis.backends.torch.functional.embedding_ops.ids_partition>`.)

>>> s = gen_slice(1, 3)
>>> s.slice_begin, s.slice_end, s.slice_size
(21846, 43691, 65536)
"""

from __future__ import annotations

from dataclasses import dataclass

SLICE_SIZE = 65536


@dataclass(frozen=True)
class Slice:
    """Slices ``[slice_begin, slice_end)`` of a key space of ``slice_size`` slices."""

    slice_begin: int
    slice_end: int
    slice_size: int


def gen_slice(shard_index: int = 0, shard_num: int = 1, slice_size: int = SLICE_SIZE) -> Slice:
    """The slices of shard ``shard_index`` of ``shard_num`` (see the module docstring).

    >>> [gen_slice(i, 2, 5).slice_end for i in range(2)]
    [3, 5]
    """
    if shard_num < 1 or not 0 <= shard_index < shard_num:
        raise ValueError(f"gen_slice: shard_index {shard_index} is not in [0, {shard_num})")
    size, extra = divmod(slice_size, shard_num)
    begin = shard_index * size + min(shard_index, extra)
    return Slice(begin, begin + size + (shard_index < extra), slice_size)


DEFAULT_SLICE = gen_slice()

"""RecIS's column ops: string hashes, bucketize, unsigned mod, multi-hash, id encoding,
decimal text and masks, each over a list of columns (``fused_*``) or one tensor.

They run the functions of :mod:`recis.backends.torch.functional`, so an op and its Python
function give the same values.

>>> import torch
>>> data, offsets = torch.tensor([0, 1, 2, 1, 2, 3], dtype=torch.int8), torch.tensor([0, 3, 6])
>>> torch.ops.recis.fused_hash([data], [offsets], "murmur")[0].tolist()
[-4003751876240412087, -1042754718167355375]
>>> torch.ops.recis.uint64_mod(torch.tensor([17, -1]), 10).tolist()
[7, 5]
>>> torch.ops.recis.fused_number_mask([torch.tensor([1.0, 2.0])], [[2.0]])[0].tolist()
[1.0, 0.0]
"""

from __future__ import annotations

import torch

from recis.backends.torch.ops.registry import dynamic_size, recis_op

HASHES = ("farm", "murmur", "djb2", "sdbm")


def _fused_hash_fake(inputs, splits, hash_type):
    return [
        x.new_empty((s.shape[0] - 1,), dtype=torch.int64)
        for x, s in zip(inputs, splits, strict=True)
    ]


@recis_op("fused_hash(Tensor[] _0, Tensor[] _1, str _2) -> Tensor[]", _fused_hash_fake)
def fused_hash(inputs, splits, hash_type):
    """One int64 hash per string of each int8 column: ``"farm"``, ``"murmur"``, ``"djb2"`` or
    ``"sdbm"``."""
    from recis.backends.torch.functional import hash_ops

    functions = {
        "farm": hash_ops.farmhash,
        "murmur": hash_ops.murmurhash,
        "djb2": hash_ops.djb2hash,
        "sdbm": hash_ops.sdbmhash,
    }
    if hash_type not in functions:
        raise ValueError(f"recis.fused_hash: hash_type must be one of {HASHES}, got {hash_type!r}")
    return functions[hash_type](list(inputs), list(splits))


def _like_inputs_fake(values, *_):
    return [v.new_empty(v.shape, dtype=torch.int64) for v in values]


@recis_op("fused_bucketized(Tensor[] _0, Tensor[] _1) -> Tensor[]", _like_inputs_fake)
def fused_bucketized(values, boundaries):
    """Per column, how many of its sorted boundaries are ≤ each value (int64)."""
    from recis.backends.torch.functional.fused_ops import fused_bucketize_gpu

    return fused_bucketize_gpu(list(values), list(boundaries))


@recis_op(
    "bucketize_op(Tensor _0, Tensor _1) -> Tensor",
    lambda x, b: x.new_empty(x.shape, dtype=torch.int64),
)
def bucketize_op(values, boundaries):
    """:func:`fused_bucketized` of one column."""
    return fused_bucketized([values], [boundaries])[0]


@recis_op("fused_uint64_mod(Tensor[] _0, Tensor _1) -> Tensor[]", _like_inputs_fake)
def fused_uint64_mod(values, mods):
    """Per column, its int64 ids taken as uint64 modulo the column's entry of ``mods``."""
    from recis.backends.torch.functional.fused_ops import fused_uint64_mod_gpu

    return fused_uint64_mod_gpu(list(values), mods)


@recis_op("uint64_mod(Tensor _0, int _1) -> Tensor", lambda x, m: x.new_empty(x.shape))
def uint64_mod(values, mod):
    """:func:`fused_uint64_mod` of one column."""
    return fused_uint64_mod([values], torch.tensor([mod]))[0]


def _multi_hash_fake(inputs, muls, primes, buckets):
    return [
        x.new_empty(x.shape) for x, m in zip(inputs, muls, strict=True) for _ in range(m.shape[0])
    ]


@recis_op(
    "fused_multi_hash(Tensor[] _0, Tensor[] _1, Tensor[] _2, Tensor[] _3) -> Tensor[]",
    _multi_hash_fake,
)
def fused_multi_hash(inputs, muls, primes, bucket_nums):
    """``((id · mul) mod prime) mod buckets`` for every multiplier of every column (flat list)."""
    from recis.backends.torch.functional import fused_ops

    return fused_ops.fused_multi_hash(list(inputs), list(muls), list(primes), list(bucket_nums))


@recis_op(
    "multi_hash(Tensor _0, Tensor _1, Tensor _2, int _3) -> Tensor[]",
    lambda x, muls, primes, b: [x.new_empty(x.shape) for _ in range(muls.shape[0])],
)
def multi_hash(values, muls, primes, bucket_num):
    """:func:`fused_multi_hash` of one column with one bucket count."""
    buckets = torch.full_like(muls, bucket_num, dtype=torch.int64)
    return fused_multi_hash([values], [muls.long()], [primes.long()], [buckets])


@recis_op(
    "ids_encode(Tensor[] _0, Tensor _1) -> Tensor",
    lambda ids, tables: tables.new_empty((sum(x.numel() for x in ids),), dtype=torch.int64),
)
def ids_encode(ids_list, table_ids):
    """All ids in one tensor, each with its table's id in the top 12 bits."""
    from recis.backends.torch.functional.fused_ops import fused_ids_encode_gpu

    return fused_ids_encode_gpu(list(ids_list), table_ids)


def _to_string_fake(inputs):
    data = [x.new_empty((dynamic_size(),), dtype=torch.int8) for x in inputs]
    return data, [x.new_empty((x.shape[0] + 1,)) for x in inputs]


@recis_op("fused_int64_to_string_int8(Tensor[] _0) -> (Tensor[], Tensor[])", _to_string_fake)
def fused_int64_to_string_int8(inputs):
    """Every int64 as decimal text: per column, int8 bytes and int64 offsets."""
    from recis.backends.torch.functional import fused_ops

    return fused_ops.fused_int64_to_string_int8(list(inputs))


@recis_op(
    "fused_string_mask(Tensor[] _0, Tensor[] _1, str[][] _2) -> Tensor[]",
    lambda inputs, offsets, masks: [
        x.new_empty((o.shape[0] - 1,), dtype=torch.float32)
        for x, o in zip(inputs, offsets, strict=True)
    ],
)
def fused_string_mask(inputs, input_offsets, masks):
    """Per column, 0.0 for strings in its mask list, 1.0 for the others."""
    from recis.backends.torch.functional import mask_ops

    return mask_ops.fused_string_mask(list(inputs), list(input_offsets), masks)


@recis_op(
    "fused_number_mask(Tensor[] _0, float[][] _1) -> Tensor[]",
    lambda inputs, masks: [x.new_empty(x.shape, dtype=torch.float32) for x in inputs],
)
def fused_number_mask(inputs, masks):
    """Per column, 0.0 for values in its mask list, 1.0 for the others."""
    from recis.backends.torch.functional import mask_ops

    return mask_ops.fused_number_mask(list(inputs), masks)

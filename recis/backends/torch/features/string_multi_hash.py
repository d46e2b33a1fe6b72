"""``StringMultiHash``: int64 ids hashed as decimal strings into up to four id spaces.

The ``k``-th output hashes each id's decimal text with ``("farm", "mur", "sdbm", "djb2")[k]``
and takes it (as uint64) modulo ``num_buckets[k]``; outputs are keyed ``f"{prefix}_{k}"`` and keep
the input's offsets, weights and ``dense_shape`` (the FG's ``mh`` multi-hash).

>>> import torch
>>> from recis.backends.torch.ragged import RaggedTensor
>>> ids = RaggedTensor(torch.tensor([12, 12, 7]), [torch.tensor([0, 2, 3])])
>>> out = StringMultiHash([100, 50])(ids)
>>> sorted(out), out["str_multi_hash_0"].values()[0] == out["str_multi_hash_0"].values()[1]
(['str_multi_hash_0', 'str_multi_hash_1'], tensor(True))
"""

from __future__ import annotations

import torch

from recis.backends.torch.features.op import _OP
from recis.backends.torch.functional.array_ops import bucketize_mod
from recis.backends.torch.functional.fused_ops import fused_int64_to_string_int8
from recis.backends.torch.functional.hash_ops import djb2hash, farmhash, murmurhash, sdbmhash
from recis.backends.torch.ragged import RaggedTensor

HASHES = {"farm": farmhash, "mur": murmurhash, "sdbm": sdbmhash, "djb2": djb2hash}


class StringMultiHash(_OP):
    """Multi-hash of ids through their decimal text (see the module docstring)."""

    def __init__(self, num_buckets: list[int], prefix: str = "str_multi_hash"):
        super().__init__()
        if not 0 < len(num_buckets) <= len(HASHES):
            raise ValueError(
                f"StringMultiHash: 1 to {len(HASHES)} bucket counts, got {num_buckets}"
            )
        self.num_buckets, self.prefix = [int(b) for b in num_buckets], prefix
        self.hash_types = list(HASHES)[: len(self.num_buckets)]

    def forward(self, x: RaggedTensor) -> dict:
        if not isinstance(x, RaggedTensor) or x.values().dtype != torch.int64:
            raise TypeError("StringMultiHash: expected a RaggedTensor of int64 ids")
        (text,), (splits,) = fused_int64_to_string_int8([x.values()])
        outputs = {}
        for k, (hash_type, buckets) in enumerate(
            zip(self.hash_types, self.num_buckets, strict=True)
        ):
            hashed = bucketize_mod(HASHES[hash_type]([text], [splits])[0], buckets)
            outputs[f"{self.prefix}_{k}"] = RaggedTensor(
                hashed, x.offsets(), x.weight(), x.dense_shape
            )
        return outputs

    def _get_config(self) -> dict:
        return {"num_buckets": self.num_buckets, "hash_types": self.hash_types}

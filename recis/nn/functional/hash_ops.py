"""RecIS's import path for :mod:`recis.backends.torch.functional.hash_ops`."""

from recis.backends.torch.functional.hash_ops import (
    djb2hash,
    farmhash,
    murmurhash,
    sdbmhash,
)

__all__ = [
    "djb2hash",
    "farmhash",
    "murmurhash",
    "sdbmhash",
]

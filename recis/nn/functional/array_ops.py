"""RecIS's import path for :mod:`recis.backends.torch.functional.array_ops`."""

from recis.backends.torch.functional.array_ops import (
    bucketize,
    bucketize_mod,
    multi_hash,
    parse_sample_id,
)

__all__ = [
    "bucketize",
    "bucketize_mod",
    "multi_hash",
    "parse_sample_id",
]

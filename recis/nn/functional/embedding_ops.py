"""RecIS's import path for :mod:`recis.backends.torch.autograd`."""

from recis.backends.torch.autograd import (
    combine,
    lookup_rows,
    shard_rows,
)

__all__ = [
    "combine",
    "lookup_rows",
    "shard_rows",
]

"""RecIS's import path for :mod:`recis.backends.torch.fg.utils`."""

from recis.backends.torch.fg.utils import (
    dict_lower_case,
    get_multihash_name,
    get_multihash_shared_name,
    parse_multihash,
)

__all__ = [
    "dict_lower_case",
    "get_multihash_name",
    "get_multihash_shared_name",
    "parse_multihash",
]

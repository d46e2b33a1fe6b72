"""RecIS's import path for :mod:`recis.backends.torch.serialize.loader`."""

from recis.backends.torch.serialize.loader import (
    Loader,
    LoadInfo,
)

__all__ = [
    "LoadInfo",
    "Loader",
]

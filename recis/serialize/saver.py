"""RecIS's import path for :mod:`recis.backends.torch.serialize.saver`."""

from recis.backends.torch.serialize.saver import (
    Saver,
)

__all__ = [
    "Saver",
]

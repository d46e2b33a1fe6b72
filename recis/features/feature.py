"""RecIS's import path for :mod:`recis.backends.torch.features.feature`."""

from recis.backends.torch.features.feature import (
    Feature,
)

__all__ = [
    "Feature",
]

"""RecIS's import path for :mod:`recis.backends.torch.metrics.gauc`."""

from recis.backends.torch.metrics.gauc import (
    Gauc,
    summed_over_ranks,
)

__all__ = [
    "Gauc",
    "summed_over_ranks",
]

"""RecIS's import path for :mod:`recis.backends.torch.metrics.auroc`."""

from recis.backends.torch.metrics.auroc import (
    AUROC,
    COUNT_NAMES,
    MODES,
)

__all__ = [
    "AUROC",
    "COUNT_NAMES",
    "MODES",
]

"""RecIS's import path for :mod:`recis.backends.torch.features.fused`."""

from recis.backends.torch.features.fused import (
    FusedBoundaryOP,
    FusedCutoffOP,
    FusedFeatureCrossOP,
    FusedHashOP,
    FusedModOP,
    FusedMultiHashOP,
    FusedOpFactory,
)

__all__ = [
    "FusedBoundaryOP",
    "FusedCutoffOP",
    "FusedFeatureCrossOP",
    "FusedHashOP",
    "FusedModOP",
    "FusedMultiHashOP",
    "FusedOpFactory",
]

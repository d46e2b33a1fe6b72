"""RecIS's import path for :mod:`recis.backends.torch.features.engine`."""

from recis.backends.torch.features.engine import (
    ExecutionStep,
    FeatureEngine,
    FuseExecutionGroup,
    NonFuseExecutionGroup,
    RunContext,
)

__all__ = [
    "ExecutionStep",
    "FeatureEngine",
    "FuseExecutionGroup",
    "NonFuseExecutionGroup",
    "RunContext",
]

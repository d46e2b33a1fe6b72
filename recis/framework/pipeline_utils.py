"""RecIS's import path for :mod:`recis.backends.torch.pipeline_utils`."""

from recis.backends.torch.pipeline_utils import (
    PREFETCH_AFTER_SPARSE_FORWARD,
    PREFETCH_BEFORE_BACKWARD,
    PREFETCH_BEFORE_FORWARD,
    PREFETCH_BEFORE_OPTIM_STEP,
    PREFETCH_NOTIFY_POSITIONS,
    PrefetchArguments,
    close_prefetch,
    make_pipeline_prefetch_transform,
    notify_prefetch,
    resolve_prefetch_model,
    setup_pipeline_prefetch,
    wrap_with_prefetch,
)

__all__ = [
    "PREFETCH_AFTER_SPARSE_FORWARD",
    "PREFETCH_BEFORE_BACKWARD",
    "PREFETCH_BEFORE_FORWARD",
    "PREFETCH_BEFORE_OPTIM_STEP",
    "PREFETCH_NOTIFY_POSITIONS",
    "PrefetchArguments",
    "close_prefetch",
    "make_pipeline_prefetch_transform",
    "notify_prefetch",
    "resolve_prefetch_model",
    "setup_pipeline_prefetch",
    "wrap_with_prefetch",
]

"""RecIS's import path for :mod:`recis.backends.torch.hooks.auto_profiler_hook`: importing it
gives that very module (see :mod:`recis.backends.torch.recis_path`)."""

from recis.backends.torch.hooks.auto_profiler_hook import (
    AutoProfilerArguments,
    _build_auto_profiler,
    _LocalTimelineProfilerHook,
)

__all__ = [
    "AutoProfilerArguments",
    "_LocalTimelineProfilerHook",
    "_build_auto_profiler",
]

"""RecIS's import path for :mod:`recis.backends.torch.hooks.profiler_hook`: importing it
gives that very module (see :mod:`recis.backends.torch.recis_path`)."""

from recis.backends.torch.hooks.profiler_hook import (
    _TRACE_SAVE_TIMEOUT,
    ProfilerHook,
    run_with_timeout,
)

__all__ = [
    "_TRACE_SAVE_TIMEOUT",
    "ProfilerHook",
    "run_with_timeout",
]

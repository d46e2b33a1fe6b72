"""RecIS's import path for :mod:`recis.backends.torch.hooks.initial_profiler_hook`: importing it
gives that very module (see :mod:`recis.backends.torch.recis_path`)."""

from recis.backends.torch.hooks.initial_profiler_hook import (
    INITIAL_PROFILE_ACTIVE_STEPS,
    INITIAL_PROFILE_FIRST_ACTIVE_STEP,
    INITIAL_PROFILE_LAST_STEP,
    INITIAL_PROFILE_SKIP_STEPS,
    INITIAL_PROFILE_WARMUP_STEPS,
    USER_PROFILER_CREATE_STEP,
    _InitialProfilerHook,
)

__all__ = [
    "INITIAL_PROFILE_ACTIVE_STEPS",
    "INITIAL_PROFILE_FIRST_ACTIVE_STEP",
    "INITIAL_PROFILE_LAST_STEP",
    "INITIAL_PROFILE_SKIP_STEPS",
    "INITIAL_PROFILE_WARMUP_STEPS",
    "USER_PROFILER_CREATE_STEP",
    "_InitialProfilerHook",
]

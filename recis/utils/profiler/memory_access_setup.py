"""RecIS's import path for :mod:`recis.backends.torch.profiler.memory_access_setup`."""

from recis.backends.torch.profiler.memory_access_setup import setup_memory_access_tracking

__all__ = [
    "setup_memory_access_tracking",
]

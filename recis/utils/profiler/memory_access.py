"""RecIS's import path for :mod:`recis.backends.torch.profiler.memory_access`."""

from recis.backends.torch.profiler.memory_access import (
    AccessContext,
    MemoryAccessTracker,
    memory_access_context,
)

__all__ = [
    "AccessContext",
    "MemoryAccessTracker",
    "memory_access_context",
]

"""RecIS's ``recis.utils.profiler``: memory-traffic tracking of RecIS's ops (torch backend)."""

from recis.backends.torch.profiler.memory_access import (
    AccessContext,
    MemoryAccessTracker,
    memory_access_context,
)
from recis.backends.torch.profiler.memory_access_setup import setup_memory_access_tracking

__all__ = [
    "AccessContext",
    "MemoryAccessTracker",
    "memory_access_context",
    "setup_memory_access_tracking",
]

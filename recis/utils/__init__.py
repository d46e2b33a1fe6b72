"""Utilities shared by the framework layers (logging), and RecIS's memory-traffic tracker.

``MemoryAccessTracker`` and ``setup_memory_access_tracking`` (torch backend) are imported on
first use, so that importing ``recis.utils`` loads no framework.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "MemoryAccessTracker": "recis.backends.torch.profiler.memory_access",
    "setup_memory_access_tracking": "recis.backends.torch.profiler.memory_access_setup",
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'recis.utils' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)


def __dir__() -> list[str]:
    return sorted(_LAZY)

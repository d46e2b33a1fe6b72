"""RecIS: training of ultra-large sparse models with growable hash-table embeddings."""

import sys

__version__ = "0.1.0"

# RecIS's torch.ops.recis.*, for a script that imported torch first
if sys.modules.get("torch") is not None:
    import recis.backends.torch.ops  # noqa: F401


def __getattr__(name: str):
    """``recis.estimate_memory``, loaded on first use (``import recis`` stays light)."""
    if name == "estimate_memory":
        from recis.core.memory import estimate_memory

        return estimate_memory
    raise AttributeError(f"module 'recis' has no attribute {name!r}")

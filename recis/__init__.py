"""RecIS: training of ultra-large sparse models with growable hash-table embeddings."""

import sys

__version__ = "0.1.0"

# RecIS's torch.ops.recis.*, for a script that imported torch first
if sys.modules.get("torch") is not None:
    import recis.backends.torch.ops  # noqa: F401

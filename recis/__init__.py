"""RecIS: training of ultra-large sparse models with growable hash-table embeddings."""

import os
import sys

__version__ = "0.1.0"

# Idle OpenMP threads sleep at once, so that the engine's pool and a framework's share the cores
# (see recis.core.threads); set before any pool of ours starts, and only if the user has not.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# RecIS's torch.ops.recis.*, for a script that imported torch first
if sys.modules.get("torch") is not None:
    import recis.backends.torch.ops  # noqa: F401

"""RecIS: training of ultra-large sparse models with growable hash-table embeddings."""

import sys

__version__ = "0.1.0"

if sys.modules.get("torch") is not None:  # RecIS's torch.ops.recis.* (a script that imported torch first)
    import recis.backends.torch.ops  # noqa: F401

"""Training framework: trainer, checkpoints and the global metrics channel (RecIS API).

``Trainer``, ``TrainingArguments`` and ``CheckpointManager`` are the torch ones; they are
imported on first use, so ``recis.framework.metrics`` stays usable without torch.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "Trainer": "recis.backends.torch.trainer",
    "TrainingArguments": "recis.backends.torch.trainer",
    "CheckpointManager": "recis.backends.torch.checkpoint",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'recis.framework' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)

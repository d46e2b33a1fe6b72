"""RecIS's import path for :mod:`recis.backends.torch.checkpoint`."""

from recis.backends.torch.checkpoint import (
    EXTRA_FILE,
    MODEL_FILE,
    RANK_FILE,
    CheckpointManager,
)
from recis.backends.torch.framework_saver import Saver, SaverCheckpointManager

__all__ = [
    "EXTRA_FILE",
    "MODEL_FILE",
    "RANK_FILE",
    "CheckpointManager",
    "Saver",
    "SaverCheckpointManager",
]

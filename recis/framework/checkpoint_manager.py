"""RecIS's import path for :mod:`recis.backends.torch.checkpoint`."""

from recis.backends.torch.checkpoint import (
    EXTRA_FILE,
    MODEL_FILE,
    RANK_FILE,
    CheckpointManager,
)
from recis.backends.torch.framework_saver import Saver, SaverCheckpointManager
from recis.backends.torch.saver_options import ExtraFields, SaverOptions

__all__ = [
    "EXTRA_FILE",
    "MODEL_FILE",
    "RANK_FILE",
    "CheckpointManager",
    "ExtraFields",
    "Saver",
    "SaverCheckpointManager",
    "SaverOptions",
]

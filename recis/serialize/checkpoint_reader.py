"""RecIS's import path for :mod:`recis.backends.torch.serialize.checkpoint_reader`."""

from recis.backends.torch.serialize.checkpoint_reader import (
    MODEL,
    MODEL_FILE,
    CheckpointReader,
)

__all__ = [
    "MODEL",
    "MODEL_FILE",
    "CheckpointReader",
]

"""Checkpoint files of hash tables and dense tensors (RecIS API).

:class:`Saver` writes hash tables and dense tensors as one checkpoint directory, :class:`Loader`
reads one back, and :class:`CheckpointReader` lists and reads its tensors. The format is described
in :mod:`recis.checkpoint`.
"""

from recis.backends.torch.serialize.checkpoint_reader import CheckpointReader
from recis.backends.torch.serialize.loader import Loader
from recis.backends.torch.serialize.saver import Saver

__all__ = ["CheckpointReader", "Loader", "Saver"]

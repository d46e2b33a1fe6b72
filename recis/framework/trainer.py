"""RecIS's import path for :mod:`recis.backends.torch.trainer`."""

from recis.backends.torch.trainer import Trainer
from recis.framework.arguments import TrainingArguments

__all__ = ["Trainer", "TrainingArguments"]

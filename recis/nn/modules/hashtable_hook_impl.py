"""RecIS's import path for :mod:`recis.embedding.hook_factory`."""

from recis.embedding.hook_factory import HashtableHookFactory
from recis.utils.data_utils import CompareOp

__all__ = ["CompareOp", "HashtableHookFactory"]

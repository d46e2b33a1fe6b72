"""RecIS's import path for :mod:`recis.backends.torch.fg.mc_parser`."""

from recis.backends.torch.fg.mc_parser import MCParser

__all__ = ["MCParser"]

"""RecIS's import path for :mod:`recis.backends.torch.functional.real_length`."""

from recis.backends.torch.functional.real_length import compute_real_length

__all__ = ["compute_real_length"]

"""RecIS's import path for :mod:`recis.backends.torch.optim.adamw_tf`."""

from recis.backends.torch.optim.adamw_tf import AdamWTF

__all__ = ["AdamWTF"]

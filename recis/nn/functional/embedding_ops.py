"""RecIS's import path for :mod:`recis.backends.torch.autograd`."""

from recis.backends.torch.autograd import (
    embed,
    rows_tensor,
)

__all__ = [
    "embed",
    "rows_tensor",
]

"""RecIS's import path for :mod:`recis.backends.torch.ragged`."""

from recis.backends.torch.ragged import (
    RaggedPadInfo,
    RaggedTensor,
)

__all__ = [
    "RaggedPadInfo",
    "RaggedTensor",
]

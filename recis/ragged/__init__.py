"""RecIS's ragged tensor for the torch backend."""

from recis.backends.torch.ragged import RaggedPadInfo, RaggedTensor

__all__ = ["RaggedPadInfo", "RaggedTensor"]

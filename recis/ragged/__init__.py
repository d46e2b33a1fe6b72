"""RecIS's ragged tensor for the torch backend."""

from recis.ragged.tensor import RaggedPadInfo, RaggedTensor

__all__ = ["RaggedPadInfo", "RaggedTensor"]

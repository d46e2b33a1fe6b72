"""RecIS's import path for :mod:`recis.backends.torch.functional.ragged_ops`."""

from recis.backends.torch.functional.padded_index import (
    gather_ragged_by_padded_index,
    index_select_ragged_by_padded_index,
)
from recis.backends.torch.functional.ragged_ops import (
    RaggedTile,
    _fused_ragged_cutoff_3D,
    check_para,
    dense_to_ragged,
    feature_cross_ragged,
    fused_ragged_cutoff_2D,
    fused_ragged_cutoff_3D,
    ragged_tile,
    ragged_to_dense,
    ragged_to_sparse,
)

__all__ = [
    "RaggedTile",
    "_fused_ragged_cutoff_3D",
    "check_para",
    "dense_to_ragged",
    "feature_cross_ragged",
    "fused_ragged_cutoff_2D",
    "fused_ragged_cutoff_3D",
    "gather_ragged_by_padded_index",
    "index_select_ragged_by_padded_index",
    "ragged_tile",
    "ragged_to_dense",
    "ragged_to_sparse",
]

"""RecIS's import path for :mod:`recis.backends.torch.functional.embedding_ops`."""

from recis.backends.torch.autograd import (
    embed,
    rows_tensor,
)
from recis.backends.torch.functional.embedding_ops import (
    EmbeddingSegmentReduceRagged,
    EmbeddingSegmentReduceSparse,
    gen_segment_indices_by_offset,
    ids_encode,
    ids_partition,
    merge_offsets,
    ragged_embedding_segment_reduce,
    segment_sum_sparse,
    sparse_embedding_segment_reduce,
    weight_norm_sparse,
)

__all__ = [
    "EmbeddingSegmentReduceRagged",
    "EmbeddingSegmentReduceSparse",
    "embed",
    "gen_segment_indices_by_offset",
    "ids_encode",
    "ids_partition",
    "merge_offsets",
    "ragged_embedding_segment_reduce",
    "rows_tensor",
    "segment_sum_sparse",
    "sparse_embedding_segment_reduce",
    "weight_norm_sparse",
]

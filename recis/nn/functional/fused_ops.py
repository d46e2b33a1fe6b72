"""RecIS's import path for :mod:`recis.backends.torch.functional.fused_ops`."""

from recis.backends.torch.functional.fused_ops import (
    fused_bucketize_gpu,
    fused_ids_encode_gpu,
    fused_int64_to_string_int8,
    fused_multi_hash,
    fused_uint64_mod_gpu,
)
from recis.backends.torch.functional.mask_ops import fused_number_mask, fused_string_mask

__all__ = [
    "fused_bucketize_gpu",
    "fused_ids_encode_gpu",
    "fused_int64_to_string_int8",
    "fused_multi_hash",
    "fused_number_mask",
    "fused_string_mask",
    "fused_uint64_mod_gpu",
]

"""RecIS's import path for :mod:`recis.backends.torch.features.op`."""

from recis.backends.torch.features.mask import Mask
from recis.backends.torch.features.op import (
    Bucketize,
    FeatureCross,
    Hash,
    IDMultiHash,
    Mod,
    SelectField,
    SelectFields,
    SequenceTruncate,
    cross_inputs,
    hash_inputs,
)
from recis.backends.torch.features.string_multi_hash import StringMultiHash

__all__ = [
    "Bucketize",
    "FeatureCross",
    "Hash",
    "IDMultiHash",
    "Mask",
    "Mod",
    "SelectField",
    "SelectFields",
    "SequenceTruncate",
    "StringMultiHash",
    "cross_inputs",
    "hash_inputs",
]

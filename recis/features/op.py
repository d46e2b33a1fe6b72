"""RecIS's import path for :mod:`recis.backends.torch.features.op`."""

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

__all__ = [
    "Bucketize",
    "FeatureCross",
    "Hash",
    "IDMultiHash",
    "Mod",
    "SelectField",
    "SelectFields",
    "SequenceTruncate",
    "cross_inputs",
    "hash_inputs",
]

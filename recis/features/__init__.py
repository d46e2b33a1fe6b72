"""RecIS feature engine: per-feature op chains, fused across features, on CPU or GPU.

>>> import torch
>>> from recis.features.feature import Feature
>>> engine = FeatureEngine([Feature("age").add_op(SelectField("age")).add_op(Bucketize([18, 30]))])
>>> engine({"age": torch.tensor([12.0, 18.0, 40.0])})
{'age': tensor([0, 1, 2])}
"""

from recis.features.feature_engine import FeatureEngine
from recis.features.op import (
    Bucketize,
    FeatureCross,
    Hash,
    IDMultiHash,
    Mod,
    SelectField,
    SelectFields,
    SequenceTruncate,
)

__all__ = [
    "Bucketize",
    "FeatureCross",
    "FeatureEngine",
    "Hash",
    "IDMultiHash",
    "Mod",
    "SelectField",
    "SelectFields",
    "SequenceTruncate",
]

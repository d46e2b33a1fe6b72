"""RecIS's import path for :mod:`recis.backends.torch.fg.fg_parser`."""

from recis.backends.torch.fg.fg_parser import (
    EMB_TYPE_MAP,
    HASH_TYPE_MAP,
    VALUE_TYPE_MAP,
    EmbTransformType,
    FeatureEmbConf,
    FGConf,
    FGParser,
    IdTransformType,
)

__all__ = [
    "EMB_TYPE_MAP",
    "HASH_TYPE_MAP",
    "VALUE_TYPE_MAP",
    "EmbTransformType",
    "FGConf",
    "FGParser",
    "FeatureEmbConf",
    "IdTransformType",
]

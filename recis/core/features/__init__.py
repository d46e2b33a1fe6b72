"""Feature ops on engine columns (NumPy arrays and Raggeds), each with a fused multi-column form.

Every ``fused_*`` function applies one kind of op to many columns (each with its own parameters)
in one kernel call; the single-column function is the fused one applied to one column, so the two
give identical results.

>>> import numpy as np
>>> mod(np.array([17, 23]), 10).tolist()
[7, 3]
"""

from __future__ import annotations

from recis.core.features.bucketize import bucketize, fused_bucketize
from recis.core.features.columns import Column
from recis.core.features.cross import feature_cross, fused_feature_cross
from recis.core.features.hashing import fused_hash_column, hash_column
from recis.core.features.mod import fused_mod, mod
from recis.core.features.multi_hash import fused_id_multi_hash, id_multi_hash
from recis.core.features.truncate import Truncation, fused_sequence_truncate, sequence_truncate

__all__ = [
    "Column",
    "Truncation",
    "bucketize",
    "feature_cross",
    "fused_bucketize",
    "fused_feature_cross",
    "fused_hash_column",
    "fused_id_multi_hash",
    "fused_mod",
    "fused_sequence_truncate",
    "hash_column",
    "id_multi_hash",
    "mod",
    "sequence_truncate",
]

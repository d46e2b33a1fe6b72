"""``FeatureIOConf``: how the reader delivers one column (RecIS's ``recis.io.dataset_config``).

A column is variable-length (``varlen``: a ragged list per row) or fixed-length (``dim`` values
per row). Strings are hashed while reading when ``hash_type`` is set (then taken modulo
``hash_bucket_size`` when it is positive) or delivered as int8 bytes with ``trans_int``. A
sequence column has ``seq_length``; ``fill_seq`` marks a float sequence that is padded rather than
truncated by a feature op.

>>> FeatureIOConf("user_id", varlen=True, hash_type="farm", hash_bucket_size=100)
FeatureIOConf(name='user_id', varlen=True, hash_type='farm', hash_bucket_size=100, \
trans_int=False, dim=1, seq_length=None, fill_seq=False)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class FeatureIOConf:
    """One column's reading options (see the module docstring)."""

    name: str
    varlen: bool = False
    hash_type: str | None = None
    hash_bucket_size: int = 0
    trans_int: bool = False
    dim: int = 1
    seq_length: int | None = None
    fill_seq: bool = False

"""Datasets over ORC and Parquet files: threaded, sharded, shuffled, exactly resumable.

The datasets are imported on first use, so that the framework-free pipeline modules
(``recis.io.columns``, ``reader``, ``packer``, ...) can be imported without torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "DataError": "recis.io.errors",
    "OrcDataset": "recis.io.orc_dataset",
    "ParquetDataset": "recis.io.parquet_dataset",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'recis.io' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)

"""Row encodings of a serving bundle: float32, bfloat16, float16, or int8 with a per-row scale.

:func:`encode` turns float32 rows into what a bundle stores; :func:`decode` gives float32 back.
int8 keeps ``round(v / scale)`` with ``scale = max|row| / 127`` (0 for an all-zero row), so every
row is reproduced within half a step of its own scale. Encoding is a pure function of the row,
which is what makes a delta's rows equal, bit for bit, to the same rows of a full export.

>>> import numpy as np
>>> rows = np.array([[0.5, -1.0], [0.0, 0.0]], np.float32)
>>> values, scale = encode(rows, "int8")
>>> values.tolist(), scale.tolist()
([[64, -127], [0, 0]], [0.007874015718698502, 0.0])
>>> decode(values, scale).tolist()
[[0.5039370059967041, -1.0], [0.0, 0.0]]
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

DTYPES = {
    "float32": np.dtype(np.float32),
    "bfloat16": np.dtype(ml_dtypes.bfloat16),
    "float16": np.dtype(np.float16),
    "int8": np.dtype(np.int8),
}


def check_dtype(dtype: str) -> str:
    """``dtype`` if a bundle can store it, else a ValueError naming the choices."""
    if dtype not in DTYPES:
        raise ValueError(f"export dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    return dtype


def encode(rows: np.ndarray, dtype: str) -> tuple[np.ndarray, np.ndarray | None]:
    """(stored values, per-row float32 scale or None) of float32 ``rows [n, dim]``."""
    rows = np.asarray(rows, np.float32)
    if check_dtype(dtype) != "int8":
        return rows.astype(DTYPES[dtype]), None
    peak = np.abs(rows).max(axis=1) if rows.size else np.zeros(len(rows), np.float32)
    scale = (peak / np.float32(127)).astype(np.float32)
    divisor = np.where(scale > 0, scale, np.float32(1))[:, None]
    values = np.clip(np.rint(rows / divisor), -127, 127).astype(np.int8)
    return values, scale


def decode(values: np.ndarray, scale: np.ndarray | None = None) -> np.ndarray:
    """float32 rows of stored ``values`` (int8 ones times their row's ``scale``)."""
    if scale is None:
        return values.astype(np.float32)
    return values.astype(np.float32) * scale[:, None]

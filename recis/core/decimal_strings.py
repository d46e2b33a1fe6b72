"""Integers written as decimal ASCII strings, in the flat-bytes-and-offsets string layout.

>>> data, offsets = int64_to_decimal_bytes(np.array([123, -45, 0]))
>>> data.tobytes(), offsets.tolist()
(b'123-450', [0, 3, 6, 7])
"""

from __future__ import annotations

import numpy as np


def int64_to_decimal_bytes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The decimal text of every int64 value: int8 bytes (ASCII) and int64 offsets [n + 1].

    Negative values start with ``-``; no value has leading zeros or a ``+`` sign.

    >>> int64_to_decimal_bytes(np.array([-9223372036854775808]))[1].tolist()
    [0, 20]
    """
    if not isinstance(values, np.ndarray) or values.ndim != 1 or values.dtype != np.int64:
        raise TypeError("values: expected a 1-D int64 NumPy array")
    text = values.astype("S20")  # 20 characters fit every int64, sign included
    lengths = np.char.str_len(text).astype(np.int64)
    offsets = np.zeros(len(values) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    padded = text.view(np.uint8).reshape(len(values), 20)
    data = padded[np.arange(20) < lengths[:, None]]
    return data.view(np.int8), offsets

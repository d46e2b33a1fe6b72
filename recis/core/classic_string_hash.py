"""The classic multiplicative string hashes djb2 and sdbm, 64-bit, over flat bytes and offsets.

Strings come as in :mod:`recis.core.string_hash`: one flat byte buffer ``data`` (``uint8`` or
``int8``, bytes taken unsigned) and offsets [n + 1]. Both hashes wrap modulo 2**64 and are
returned reinterpreted as int64:

- ``djb2``: ``h = 5381``, then ``h = h·33 + byte`` for every byte;
- ``sdbm``: ``h = 0``, then ``h = byte + (h << 6) + (h << 16) − h`` for every byte.

The loop runs over byte positions (as many steps as the longest string), every string at once.

>>> data = np.array([0, 1, 2, 1, 2, 3], np.int8)
>>> hash_strings_classic(data, np.array([0, 3, 6]), "djb2").tolist()
[193377032, 193378155]
>>> hash_strings_classic(data, np.array([0, 3, 6]), "sdbm").tolist()
[65601, 4303360002]
"""

from __future__ import annotations

import numpy as np

from recis.core.ragged import as_offsets

CLASSIC_HASH_TYPES = ("djb2", "sdbm")


def hash_strings_classic(data: np.ndarray, offsets, hash_type: str) -> np.ndarray:
    """One int64 hash per string: ``"djb2"`` or ``"sdbm"`` (see the module docstring).

    >>> hash_strings_classic(np.zeros(0, np.uint8), np.array([0, 0]), "djb2").tolist()
    [5381]
    """
    if hash_type not in CLASSIC_HASH_TYPES:
        raise ValueError(f"hash_type: expected one of {CLASSIC_HASH_TYPES}, got {hash_type!r}")
    if not isinstance(data, np.ndarray) or data.ndim != 1 or data.dtype not in (np.uint8, np.int8):
        raise TypeError("data: expected a 1-D uint8 or int8 NumPy array")
    offsets = as_offsets(offsets, len(data), "offsets", "bytes")
    data = data.view(np.uint8).astype(np.uint64)
    starts, lengths = offsets[:-1], np.diff(offsets)
    seed = 5381 if hash_type == "djb2" else 0
    hashes = np.full(len(lengths), seed, dtype=np.uint64)
    for position in range(int(lengths.max()) if len(lengths) else 0):
        live = np.flatnonzero(lengths > position)
        byte = data[starts[live] + position]
        hashes[live] = _step(hashes[live], byte, hash_type)
    return hashes.view(np.int64)


def _step(hashes: np.ndarray, byte: np.ndarray, hash_type: str) -> np.ndarray:
    if hash_type == "djb2":
        return hashes * np.uint64(33) + byte
    return byte + (hashes << np.uint64(6)) + (hashes << np.uint64(16)) - hashes

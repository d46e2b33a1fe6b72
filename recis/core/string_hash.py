"""64-bit hashes of strings (farmhash ``Fingerprint64``, MurmurHash64A) and of id pairs.

Strings come as one flat byte buffer ``data`` (``uint8`` or ``int8``) and int64 ``offsets``
[n + 1]: string ``i`` is ``data[offsets[i]:offsets[i + 1]]`` (the layout of Arrow string arrays
and of int8 ragged strings). A hash is an unsigned 64-bit value returned reinterpreted as int64.

>>> data = np.frombuffer(b"\\x00\\x01\\x02\\x01\\x02\\x03", np.uint8)
>>> hash_strings(data, np.array([0, 3, 6]), "farm").tolist()
[-7736835464683084646, -5546720800891377920]
>>> hash_strings(data, np.array([0, 3, 6]), "murmur", bucket=1000).tolist()
[529, 241]
"""

from __future__ import annotations

import numpy as np

from recis.core import arrays as interop
from recis.core.kernels import string_hash as kernels
from recis.core.ragged import as_offsets

HASH_TYPES = ("farm", "murmur")
INT64_MAX = np.iinfo(np.int64).max

_STRING_KERNELS = {"farm": kernels.farm_fingerprint64, "murmur": kernels.murmur_hash64a}


def hash_strings(
    data: np.ndarray, offsets: np.ndarray, hash_type: str, bucket: int = 0
) -> np.ndarray:
    """One int64 hash per string: farmhash ``Fingerprint64`` (``"farm"``) or MurmurHash64A.

    MurmurHash64A uses seed 0. With ``bucket == 0`` the result is the 64-bit hash reinterpreted as
    int64 (it may be negative); with ``bucket > 0`` it is the unsigned hash modulo ``bucket``, in
    ``[0, bucket)``. Raises ``ValueError`` for an unknown ``hash_type``, malformed ``offsets`` or
    a negative ``bucket``, and ``TypeError`` for arrays of the wrong kind.

    >>> hash_strings(np.zeros(0, np.int8), np.array([0, 0]), "farm").tolist()
    [-7286425919675154353]
    """
    kernel = _string_kernel(hash_type)
    data = _byte_buffer(data)
    offsets = np.ascontiguousarray(as_offsets(offsets, len(data), "offsets", "bytes"))
    bucket = _check_bucket(bucket)
    hashes = interop.empty(len(offsets) - 1, np.int64)
    kernel(data, offsets, hashes.view(np.uint64))
    return _unsigned_modulo(hashes, bucket)


def hash_bytes(value: bytes, hash_type: str) -> int:
    """The hash of one byte string, as :func:`hash_strings` with ``bucket == 0`` gives it.

    >>> hash_bytes(b"\\x01\\x02\\x03", "murmur")
    -1042754718167355375
    """
    if not isinstance(value, bytes | bytearray | memoryview):
        raise TypeError(f"value: expected bytes, got {type(value).__name__}")
    data = np.frombuffer(value, np.uint8)
    return int(hash_strings(data, np.array([0, len(data)]), hash_type)[0])


def murmur_pair(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """MurmurHash64A (seed 0) of the 16 bytes of each pair ``(x[i], y[i])``, as int64.

    The bytes are ``x[i]``'s 8 little-endian bytes followed by ``y[i]``'s. ``x`` and ``y`` are
    int64 arrays of the same shape; the result has that shape.

    >>> murmur_pair(np.array([1001, 1002]), np.array([1, 2])).tolist()
    [-7808879811642834040, -4967483181219983279]
    """
    x, y = _int64_array(x, "x"), _int64_array(y, "y")
    if x.shape != y.shape:
        raise ValueError(f"x and y: shapes differ, {x.shape} and {y.shape}")
    hashes = interop.empty(x.shape, np.int64)
    kernels.murmur_pair(x.reshape(-1), y.reshape(-1), hashes.reshape(-1).view(np.uint64))
    return hashes


def clear_sign_bit(values: np.ndarray) -> np.ndarray:
    """``values & INT64_MAX``: int64 hashes made non-negative by dropping the top bit.

    >>> clear_sign_bit(np.array([-1, 5])).tolist()
    [9223372036854775807, 5]
    """
    values = _int64_array(values, "values")
    out = interop.empty(values.shape, np.int64)
    np.bitwise_and(values, INT64_MAX, out=out)
    return out


def _string_kernel(hash_type):
    if hash_type not in _STRING_KERNELS:
        raise ValueError(f"hash_type: expected one of {HASH_TYPES}, got {hash_type!r}")
    return _STRING_KERNELS[hash_type]


def _byte_buffer(data) -> np.ndarray:
    if not isinstance(data, np.ndarray) or data.ndim != 1 or data.dtype not in (np.uint8, np.int8):
        raise TypeError("data: expected a 1-D uint8 or int8 NumPy array")
    return np.ascontiguousarray(data).view(np.uint8)


def _check_bucket(bucket) -> int:
    if isinstance(bucket, bool) or not isinstance(bucket, int | np.integer):
        raise TypeError(f"bucket: expected an integer, got {type(bucket).__name__}")
    if not 0 <= bucket <= INT64_MAX:
        raise ValueError(f"bucket: must lie in [0, 2**63 - 1], got {bucket}")
    return int(bucket)


def _unsigned_modulo(hashes: np.ndarray, bucket: int) -> np.ndarray:
    """``hashes`` taken as uint64 modulo ``bucket``, in place; unchanged when ``bucket`` is 0."""
    if bucket:
        unsigned = hashes.view(np.uint64)
        np.remainder(unsigned, np.uint64(bucket), out=unsigned)
    return hashes


def _int64_array(array, name: str) -> np.ndarray:
    if not isinstance(array, np.ndarray) or array.dtype != np.int64:
        raise TypeError(f"{name}: expected an int64 NumPy array")
    return np.ascontiguousarray(array)

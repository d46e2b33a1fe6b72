"""Hash string columns to int64 ids (RecIS ``Hash``).

A string column is a Ragged of int8 or uint8 bytes whose last offset level delimits the strings
(RecIS's int8 layout). Each string is hashed (farmhash ``Fingerprint64`` or MurmurHash64A, seed 0,
see :mod:`recis.core.string_hash`); the result drops that last level: a Ragged of int64 over the
remaining levels, or a dense [num_strings] array when the column had one level. A Ragged holds
per-value weights, which bytes do not have: per-string weights are passed as ``string_weights``.

>>> strings = Ragged(np.frombuffer(b"\\x00\\x01\\x02\\x01\\x02\\x03", np.uint8),
...                  (np.array([0, 2]), np.array([0, 3, 6])))
>>> hash_column(strings, "farm").values.tolist()
[-7736835464683084646, -5546720800891377920]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from recis.core import arrays as interop
from recis.core.cuda import features as gpu_kernels
from recis.core.features.columns import (
    as_ragged,
    check_count,
    contiguous,
    group_indices,
    labels_for,
    namespace_of,
)
from recis.core.ragged import Ragged
from recis.core.string_hash import HASH_TYPES, hash_strings


def hash_column(
    strings: Ragged, hash_type: str, string_weights: np.ndarray | None = None
) -> Ragged | np.ndarray:
    """Hash every string of ``strings`` with ``hash_type`` (``"farm"`` or ``"murmur"``)."""
    return fused_hash_column([strings], [hash_type], [string_weights], labels=["strings"])[0]


def fused_hash_column(
    columns: Sequence[Ragged],
    hash_types: Sequence[str],
    string_weights: Sequence[np.ndarray | None] | None = None,
    labels: Sequence[str] | None = None,
) -> list[Ragged | np.ndarray]:
    """:func:`hash_column` of every column: one hash call per hash type and device over all
    their strings.

    ``labels`` name the columns in error messages (default ``columns[i]``).
    """
    check_count("hash_types", hash_types, len(columns))
    string_weights = [None] * len(columns) if string_weights is None else string_weights
    check_count("string_weights", string_weights, len(columns))
    labels = labels_for(len(columns), labels)
    columns = [_check_strings(c, label) for c, label in zip(columns, labels, strict=True)]
    for hash_type in hash_types:
        check_hash_type(hash_type)
    hashes: list[np.ndarray] = [np.empty(0, np.int64)] * len(columns)
    keys = [(namespace_of(c), hash_type) for c, hash_type in zip(columns, hash_types, strict=True)]
    for (xp, hash_type), group in group_indices(keys).items():
        together = _hash_together if xp is np else _hash_on_gpu
        for i, h in zip(group, together([columns[i] for i in group], hash_type), strict=True):
            hashes[i] = h
    return [
        _drop_string_level(c, h, w, label)
        for c, h, w, label in zip(columns, hashes, string_weights, labels, strict=True)
    ]


def check_hash_type(hash_type: str) -> str:
    """``hash_type``, or ``ValueError`` unless it is one of :data:`HASH_TYPES`."""
    if hash_type not in HASH_TYPES:
        raise ValueError(f"hash_type: expected one of {HASH_TYPES}, got {hash_type!r}")
    return hash_type


def _check_strings(column, label: str) -> Ragged:
    column = as_ragged(column, label)
    if column.values.dtype not in (np.int8, np.uint8):
        raise TypeError(f"{label}: expected int8 or uint8 bytes, got {column.values.dtype}")
    if column.weights is not None:
        raise ValueError(f"{label}: bytes carry no weights; pass per-string weights separately")
    return column


def _hash_together(columns: list[Ragged], hash_type: str) -> list[np.ndarray]:
    """Hash the strings of all columns in one call; one array of hashes per column."""
    if len(columns) == 1:
        return [hash_strings(columns[0].values, columns[0].offsets[-1], hash_type)]
    data = np.concatenate([c.values.view(np.uint8) for c in columns])
    counts = [len(c.offsets[-1]) - 1 for c in columns]
    byte_starts = np.cumsum([0] + [len(c.values) for c in columns])
    offsets = np.concatenate(
        [np.zeros(1, np.int64)]
        + [c.offsets[-1][1:] + start for c, start in zip(columns, byte_starts[:-1], strict=True)]
    )
    hashes = hash_strings(data, offsets, hash_type)
    return np.split(hashes, np.cumsum(counts)[:-1])


def _hash_on_gpu(columns: list[Ragged], hash_type: str) -> list:
    """Hash the strings of all (CuPy) columns in one launch; one array of hashes per column."""
    xp = namespace_of(columns[0])
    hashes = [interop.empty(len(c.offsets[-1]) - 1, np.int64, xp) for c in columns]
    gpu_kernels.fused_hash_strings(
        [contiguous(c.values).view(np.uint8) for c in columns],
        [contiguous(c.offsets[-1]) for c in columns],
        hash_type,
        [h.view(np.uint64) for h in hashes],
    )
    return hashes


def _drop_string_level(column: Ragged, hashes: np.ndarray, weights, label: str):
    if column.ragged_rank == 1:
        if weights is not None:
            raise ValueError(f"{label}: a one-level string column hashes to a dense array")
        return hashes
    return Ragged(hashes, column.offsets[:-1], weights)

"""Multi-hash of int64 ids into up to four small id spaces (RecIS ``IDMultiHash``).

For ``k < len(num_buckets)``: ``out_k = ((id · m_k) mod p_k) mod num_buckets[k]`` with
``m = (1, 3, 5, 7)`` and ``p_k`` the largest prime ≤ ``(29, 47, 67, 83)[k] · num_buckets[k]``.
The product wraps modulo 2**64 and ``mod`` is the floor modulo, so every output is in
``[0, num_buckets[k])``, negative ids included. Useful for compositional (multi-hash) embeddings.

>>> [h.tolist() for h in id_multi_hash(np.array([1001, 1002]), [1000, 1000])]
[[1, 2], [3, 6]]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from recis.core import arrays as interop
from recis.core.features.columns import (
    Column,
    check_count,
    flat_values,
    group_indices,
    labels_for,
    namespace_of,
    require_dtype,
    run_fused,
    with_values,
)
from recis.core.kernels import feature_ops as kernels

MULTIPLIERS = (1, 3, 5, 7)
PRIME_SCALES = (29, 47, 67, 83)
MAX_HASHES = len(MULTIPLIERS)
_MILLER_RABIN_BASES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)  # exact below 3.3e24


def id_multi_hash(column: Column, num_buckets: Sequence[int]) -> list[Column]:
    """One column of hashed ids (int64, same structure) per entry of ``num_buckets``."""
    return fused_id_multi_hash([column], [num_buckets], labels=["column"])[0]


def fused_id_multi_hash(
    columns: Sequence[Column],
    num_buckets: Sequence[Sequence[int]],
    labels: Sequence[str] | None = None,
) -> list[list[Column]]:
    """:func:`id_multi_hash` of every column with its own buckets, in one kernel call per
    device.

    ``labels`` name the columns in error messages (default ``columns[i]``).
    """
    check_count("num_buckets", num_buckets, len(columns))
    params = [multi_hash_parameters(b) for b in num_buckets]
    multipliers, primes, buckets = ([p[j] for p in params] for j in range(3))
    return fused_multi_hash_with(columns, multipliers, primes, buckets, labels)


def fused_multi_hash_with(
    columns: Sequence[Column],
    multipliers: Sequence[np.ndarray],
    primes: Sequence[np.ndarray],
    buckets: Sequence[np.ndarray],
    labels: Sequence[str] | None = None,
) -> list[list[Column]]:
    """The multi-hash of every column with its own parameters (RecIS ``fused_multi_hash``).

    Column ``f`` gets one output per entry ``k`` of its 1-D int64 ``multipliers[f]``,
    ``primes[f]`` and ``buckets[f]`` (equal lengths, positive primes and buckets):
    ``((id · multipliers[f][k]) mod primes[f][k]) mod buckets[f][k]``, in one kernel call per
    device.

    >>> one = np.array([1], np.int64)
    >>> [h.tolist() for h in fused_multi_hash_with([np.array([5, 6])], [one * 3], [one * 7],
    ...                                           [one * 4])[0]]
    [[1, 0]]
    """
    labels = labels_for(len(columns), labels)
    for name, params in (("multipliers", multipliers), ("primes", primes), ("buckets", buckets)):
        check_count(name, params, len(columns))
    values = [
        require_dtype(flat_values(c, label), np.int64, label)
        for c, label in zip(columns, labels, strict=True)
    ]
    if not values:
        return []
    params = [
        _checked_parameters(m, p, b, label)
        for m, p, b, label in zip(multipliers, primes, buckets, labels, strict=True)
    ]
    padded = [_padded([p[j] for p in params]) for j in range(3)]  # multipliers, primes, buckets
    namespaces = [namespace_of(v) for v in values]
    outs = [
        interop.empty((len(p[0]), len(v)), np.int64, xp)
        for p, v, xp in zip(params, values, namespaces, strict=True)
    ]
    for xp, group in group_indices(namespaces).items():
        run_fused(
            xp,
            kernels.fused_multi_hash,
            "fused_multi_hash",
            [values[i] for i in group],
            *(p[group] for p in padded),
            [outs[i] for i in group],
        )
    return [[with_values(c, row) for row in o] for c, o in zip(columns, outs, strict=True)]


def _checked_parameters(multipliers, primes, buckets, label: str) -> tuple[np.ndarray, ...]:
    rows = [np.asarray(p) for p in (multipliers, primes, buckets)]
    if any(r.ndim != 1 or r.dtype != np.int64 for r in rows):
        raise TypeError(f"{label}: multipliers, primes and buckets must be 1-D int64 arrays")
    if len({len(r) for r in rows}) != 1 or not len(rows[0]):
        raise ValueError(f"{label}: multipliers, primes and buckets need one equal, nonzero length")
    if np.any(rows[1] <= 0) or np.any(rows[2] <= 0):
        raise ValueError(f"{label}: primes and buckets must be positive")
    return tuple(rows)


def multi_hash_parameters(num_buckets: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Multipliers, primes and buckets (int64 arrays) for ``num_buckets`` (1 to 4 entries).

    >>> [p.tolist() for p in multi_hash_parameters([1000, 10])]
    [[1, 3], [28979, 467], [1000, 10]]
    """
    if any(isinstance(b, bool) or not isinstance(b, int | np.integer) for b in num_buckets):
        raise TypeError(f"num_buckets: expected integers, got {list(num_buckets)}")
    buckets = [int(b) for b in num_buckets]
    if not 1 <= len(buckets) <= MAX_HASHES:
        raise ValueError(f"num_buckets: expected 1 to {MAX_HASHES} entries, got {len(buckets)}")
    limit = np.iinfo(np.int64).max // max(PRIME_SCALES)
    if any(not 1 <= b <= limit for b in buckets):
        raise ValueError(f"num_buckets: every entry must lie in [1, {limit}], got {buckets}")
    primes = [largest_prime_at_most(s * b) for s, b in zip(PRIME_SCALES, buckets, strict=False)]
    multipliers = np.array(MULTIPLIERS[: len(buckets)], np.int64)
    return multipliers, np.array(primes, np.int64), np.array(buckets, np.int64)


def largest_prime_at_most(n: int) -> int:
    """The largest prime ≤ ``n`` (``n`` ≥ 2).

    >>> largest_prime_at_most(29000), largest_prime_at_most(2)
    (28979, 2)
    """
    candidate = n
    while not _is_prime(candidate):
        candidate -= 1
    return candidate


def _is_prime(n: int) -> bool:
    """Deterministic Miller–Rabin for every n below 3.3e24."""
    if n < 2:
        return False
    for p in _MILLER_RABIN_BASES:
        if n % p == 0:
            return n == p
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    return all(_passes_round(n, d, s, a) for a in _MILLER_RABIN_BASES)


def _passes_round(n: int, d: int, s: int, a: int) -> bool:
    x = pow(a, d, n)
    if x in (1, n - 1):
        return True
    for _ in range(s - 1):
        x = x * x % n
        if x == n - 1:
            return True
    return False


def _padded(rows: list[np.ndarray]) -> np.ndarray:
    """Rows of parameters as an int64 [F, widest row] array padded with ones."""
    out = np.ones((len(rows), max(len(row) for row in rows)), np.int64)
    for f, row in enumerate(rows):
        out[f, : len(row)] = row
    return out

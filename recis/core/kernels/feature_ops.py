"""Fused value-wise feature kernels: unsigned modulo, bucketize (upper bound) and id multi-hash.

Each kernel takes a ``numba.typed.List`` of 1-D arrays, one per feature, plus per-feature
parameters, and overwrites preallocated outputs (another typed List), so any number of features
costs one call. Each kernel has a NumPy twin ``<name>_reference`` with the same signature (plain
Python lists work there too).

The feature kernels are serial: a batch's work per step is a few milliseconds, which a fork-join
parallel region barely shortens on an idle machine and can stretch many times over when the
cores are shared (torch's own threads, IO workers), since every region waits for its slowest
thread.

>>> from numba.typed import List
>>> values, out = List([np.array([7, 12], np.uint64)]), List([np.empty(2, np.uint64)])
>>> magic, shift = modulo_magic(5)
>>> fused_mod(values, np.array([5], np.uint64), np.array([magic], np.uint64),
...           np.array([shift], np.uint64), out)
>>> out[0].tolist()
[2, 2]
"""

from __future__ import annotations

import functools

import numba
import numpy as np

LOW32 = np.uint64(0xFFFFFFFF)
U32 = np.uint64(32)
U1 = np.uint64(1)


@functools.cache
def modulo_magic(divisor: int) -> tuple[int, int]:
    """``(magic, shift)`` that let :func:`fused_mod` divide by ``divisor`` (in [2, 2**64 - 1]).

    Granlund and Montgomery's division by an invariant integer (1994, figure 4.1): with
    ``l = ceil(log2(divisor))``, ``magic = floor(2**64 · (2**l − divisor) / divisor) + 1`` and
    ``shift = l − 1``, the quotient of any uint64 ``n`` is ``(t + ((n − t) >> 1)) >> shift`` where
    ``t`` is the high word of ``magic · n``.

    >>> modulo_magic(10)
    (11068046444225730970, 3)
    """
    bits = (divisor - 1).bit_length()
    return (2**64 * (2**bits - divisor)) // divisor + 1, bits - 1


@numba.njit(cache=True)
def fused_mod(values, divisors, magics, shifts, out):
    """``out[f] = values[f] % divisors[f]`` on uint64 arrays, without hardware division.

    ``divisors``, ``magics`` and ``shifts`` are uint64[F]; ``magics[f]``/``shifts[f]`` come from
    :func:`modulo_magic` (any value where the divisor is 1).
    """
    for f in range(len(values)):
        _mod(values[f], divisors[f], magics[f], shifts[f], out[f])


@numba.njit
def _mod(values, divisor, magic, shift, out):
    if divisor == U1:
        out[:] = 0
        return
    for i in range(values.shape[0]):
        n = values[i]
        high = _multiply_high(magic, n)
        out[i] = n - ((high + ((n - high) >> U1)) >> shift) * divisor


@numba.njit(inline="always")
def _multiply_high(a, b):
    """The high 64 bits of the 128-bit product of two uint64 values."""
    a_low, a_high, b_low, b_high = a & LOW32, a >> U32, b & LOW32, b >> U32
    cross_1, cross_2 = a_low * b_high, a_high * b_low
    carry = (((a_low * b_low) >> U32) + (cross_1 & LOW32) + (cross_2 & LOW32)) >> U32
    return a_high * b_high + (cross_1 >> U32) + (cross_2 >> U32) + carry


def fused_mod_reference(values, divisors, magics, shifts, out):
    """Twin of :func:`fused_mod` (hardware division)."""
    for column, divisor, result in zip(values, divisors, out, strict=True):
        np.remainder(column, divisor, out=result)


@numba.njit(cache=True)
def fused_bucketize(values, boundaries, out):
    """``out[f][i]`` = how many of the sorted ``boundaries[f]`` are ≤ ``values[f][i]``.

    This is C++'s ``std::upper_bound`` position: NaN lands after every boundary. Values are
    compared with the float64 boundaries after promotion to float64.
    """
    for f in range(len(values)):
        _upper_bounds(values[f], boundaries[f], out[f])


@numba.njit
def _upper_bounds(values, boundaries, out):
    for i in range(values.shape[0]):
        value = values[i]
        low, high = 0, boundaries.shape[0]
        while low < high:
            middle = (low + high) >> 1
            if value < boundaries[middle]:
                high = middle
            else:
                low = middle + 1
        out[i] = low


def fused_bucketize_reference(values, boundaries, out):
    """Twin of :func:`fused_bucketize`."""
    for column, edges, result in zip(values, boundaries, out, strict=True):
        result[:] = np.searchsorted(edges, column.astype(np.float64), side="right")


@numba.njit(cache=True)
def fused_multi_hash(values, multipliers, primes, buckets, out):
    """``out[f][k, i] = ((values[f][i] · multipliers[f, k]) mod primes[f, k]) mod buckets[f, k]``.

    For ``k < out[f].shape[0]``. All int64; the product wraps modulo 2**64 and ``mod`` is the floor
    modulo (the result is never negative for positive moduli).
    """
    for f in range(len(values)):
        column, result = values[f], out[f]
        for k in range(result.shape[0]):
            multiplier, prime, bucket = multipliers[f, k], primes[f, k], buckets[f, k]
            for i in range(column.shape[0]):
                result[k, i] = ((column[i] * multiplier) % prime) % bucket


def fused_multi_hash_reference(values, multipliers, primes, buckets, out):
    """Twin of :func:`fused_multi_hash`."""
    for f, (column, result) in enumerate(zip(values, out, strict=True)):
        for k in range(result.shape[0]):
            product = np.multiply(column, multipliers[f, k])  # wraps like the kernel
            result[k] = np.mod(np.mod(product, primes[f, k]), buckets[f, k])

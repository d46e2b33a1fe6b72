"""String hash kernels: farmhash ``Fingerprint64`` and MurmurHash64A (seed 0).

Shared arguments: ``data`` (1-D ``uint8``, the bytes of all strings), ``offsets`` [n + 1] int64
(string ``i`` is ``data[offsets[i]:offsets[i + 1]]``) and ``out`` [n] ``uint64``, which the kernels
overwrite. Multi-byte words are read little-endian from any byte position. All arithmetic is on
unsigned 64-bit words and wraps modulo 2**64.

Each kernel has a twin ``<name>_reference`` with the same signature that spells the algorithm out
on Python integers; it is the readable specification the kernel is tested against.

>>> data, offsets = np.frombuffer(b"abc", np.uint8), np.array([0, 3])
>>> out, twin = np.empty(1, np.uint64), np.empty(1, np.uint64)
>>> murmur_hash64a(data, offsets, out); murmur_hash64a_reference(data, offsets, twin)
>>> bool(out[0] == twin[0])
True
"""

from __future__ import annotations

import numba
import numpy as np

# farmhash constants
K0 = np.uint64(0xC3A5C85C97CB3127)
K1 = np.uint64(0xB492B66FBE98F273)
K2 = np.uint64(0x9AE16A3B2F90404F)
FARM_SEED = np.uint64(81)
# MurmurHash64A constants
MURMUR_M = np.uint64(0xC6A4A7935BD1E995)
MURMUR_R = np.uint64(47)

MASK64 = (1 << 64) - 1


# ---------------------------------------------------------------------------------------------
# numba building blocks (every operand is uint64, so no arithmetic is promoted to float64)


@numba.njit
def _fetch64(data, i):
    """Little-endian 64-bit word at byte ``i``."""
    word, start = np.uint64(0), np.uint64(i)  # an unsigned index skips wraparound handling
    for k in range(8):
        word |= np.uint64(data[start + np.uint64(k)]) << np.uint64(8 * k)
    return word


@numba.njit
def _fetch32(data, i):
    """Little-endian 32-bit word at byte ``i``, widened to 64 bits."""
    word, start = np.uint64(0), np.uint64(i)
    for k in range(4):
        word |= np.uint64(data[start + np.uint64(k)]) << np.uint64(8 * k)
    return word


@numba.njit
def _rotate(value, shift):
    """Rotate right by ``shift`` bits, 0 < shift < 64."""
    return (value >> np.uint64(shift)) | (value << np.uint64(64 - shift))


@numba.njit
def _shift_mix(value):
    return value ^ (value >> np.uint64(47))


@numba.njit
def _hash_len16(u, v, mul):
    a = _shift_mix((u ^ v) * mul)
    b = _shift_mix((v ^ a) * mul)
    return b * mul


@numba.njit
def _length_mul(n):
    return K2 + np.uint64(n) * np.uint64(2)


@numba.njit
def _farm_len0to16(data, s, n):
    if n >= 8:
        mul = _length_mul(n)
        a = _fetch64(data, s) + K2
        b = _fetch64(data, s + n - 8)
        c = _rotate(b, 37) * mul + a
        d = (_rotate(a, 25) + b) * mul
        return _hash_len16(c, d, mul)
    if n >= 4:
        a = _fetch32(data, s)
        u = np.uint64(n) + (a << np.uint64(3))
        return _hash_len16(u, _fetch32(data, s + n - 4), _length_mul(n))
    if n > 0:
        y = np.uint64(data[s]) + (np.uint64(data[s + (n >> 1)]) << np.uint64(8))
        z = np.uint64(n) + (np.uint64(data[s + n - 1]) << np.uint64(2))
        return _shift_mix((y * K2) ^ (z * K0)) * K2
    return K2


@numba.njit
def _farm_len17to32(data, s, n):
    mul = _length_mul(n)
    a = _fetch64(data, s) * K1
    b = _fetch64(data, s + 8)
    c = _fetch64(data, s + n - 8) * mul
    d = _fetch64(data, s + n - 16) * K2
    u = _rotate(a + b, 43) + _rotate(c, 30) + d
    return _hash_len16(u, a + _rotate(b + K2, 18) + c, mul)


@numba.njit
def _farm_len33to64(data, s, n):
    mul = _length_mul(n)
    a = _fetch64(data, s) * K2
    b = _fetch64(data, s + 8)
    c = _fetch64(data, s + n - 8) * mul
    d = _fetch64(data, s + n - 16) * K2
    y = _rotate(a + b, 43) + _rotate(c, 30) + d
    z = _hash_len16(y, a + _rotate(b + K2, 18) + c, mul)
    e = _fetch64(data, s + 16) * mul
    f = _fetch64(data, s + 24)
    g = (y + _fetch64(data, s + n - 32)) * mul
    h = (z + _fetch64(data, s + n - 24)) * mul
    return _hash_len16(_rotate(e + f, 43) + _rotate(g, 30) + h, e + _rotate(f + a, 18) + g, mul)


@numba.njit
def _weak_hash_len32_with_seeds(data, s, a, b):
    """farmhash's WeakHashLen32WithSeeds over the 32 bytes at ``s``: a pair of words."""
    w, x = _fetch64(data, s), _fetch64(data, s + 8)
    y, z = _fetch64(data, s + 16), _fetch64(data, s + 24)
    a += w
    b = _rotate(b + a + z, 21)
    c = a
    a += x + y
    b += _rotate(a, 44)
    return a + z, b + c


@numba.njit
def _farm_block(data, s, x, y, z, v0, v1, w0, w1, mul, scale):
    """One 64-byte block at ``s`` of the long-string loop (``scale`` is 9 for the last block)."""
    x = _rotate(x + y + v0 + _fetch64(data, s + 8), 37) * mul
    y = _rotate(y + v1 + _fetch64(data, s + 48), 42) * mul
    x ^= w1 * scale
    y += v0 * scale + _fetch64(data, s + 40)
    z = _rotate(z + w0, 33) * mul
    v0, v1 = _weak_hash_len32_with_seeds(data, s, v1 * mul, x + w0)
    w0, w1 = _weak_hash_len32_with_seeds(data, s + 32, z + w1, y + _fetch64(data, s + 16))
    return z, y, x, v0, v1, w0, w1  # x and z swap


@numba.njit
def _farm_long(data, s, n):
    """Fingerprint64 of more than 64 bytes: 64-byte blocks, then the last 64 bytes."""
    y = FARM_SEED * K1 + np.uint64(113)
    z = _shift_mix(y * K2 + np.uint64(113)) * K2
    x = FARM_SEED * K2 + _fetch64(data, s)
    v0 = v1 = w0 = w1 = np.uint64(0)
    one = np.uint64(1)
    for block in range(s, s + (n - 1) // 64 * 64, 64):
        x, y, z, v0, v1, w0, w1 = _farm_block(data, block, x, y, z, v0, v1, w0, w1, K1, one)
    mul = K1 + ((z & np.uint64(0xFF)) << one)
    w0 += np.uint64((n - 1) & 63)
    v0 += w0
    w0 += v0
    last = s + n - 64
    x, y, z, v0, v1, w0, w1 = _farm_block(data, last, x, y, z, v0, v1, w0, w1, mul, np.uint64(9))
    first = _hash_len16(v0, w0, mul) + _shift_mix(y) * K0 + z
    return _hash_len16(first, _hash_len16(v1, w1, mul) + x, mul)


@numba.njit
def _farm_fingerprint(data, s, n):
    if n <= 16:
        return _farm_len0to16(data, s, n)
    if n <= 32:
        return _farm_len17to32(data, s, n)
    if n <= 64:
        return _farm_len33to64(data, s, n)
    return _farm_long(data, s, n)


@numba.njit
def _murmur_mix(k):
    k *= MURMUR_M
    k ^= k >> MURMUR_R
    return k * MURMUR_M


@numba.njit
def _murmur_finish(h):
    h ^= h >> MURMUR_R
    h *= MURMUR_M
    return h ^ (h >> MURMUR_R)


@numba.njit
def _murmur64a(data, s, n):
    h = np.uint64(n) * MURMUR_M
    body_end = s + n - (n & 7)
    for i in range(s, body_end, 8):
        h = (h ^ _murmur_mix(_fetch64(data, i))) * MURMUR_M
    if n & 7:
        for k in range(n & 7):
            h ^= np.uint64(data[body_end + k]) << np.uint64(8 * k)
        h *= MURMUR_M
    return _murmur_finish(h)


# ---------------------------------------------------------------------------------------------
# kernels


@numba.njit(parallel=True, cache=True)
def farm_fingerprint64(data, offsets, out):
    """``out[i]`` = farmhash Fingerprint64 of string ``i``."""
    for i in numba.prange(out.shape[0]):
        out[i] = _farm_fingerprint(data, offsets[i], offsets[i + 1] - offsets[i])


@numba.njit(parallel=True, cache=True)
def murmur_hash64a(data, offsets, out):
    """``out[i]`` = MurmurHash64A (seed 0) of string ``i``."""
    for i in numba.prange(out.shape[0]):
        out[i] = _murmur64a(data, offsets[i], offsets[i + 1] - offsets[i])


@numba.njit(parallel=True, cache=True)
def murmur_pair(x, y, out):
    """``out[i]`` = MurmurHash64A (seed 0) of the 16 little-endian bytes of ``x[i]``, ``y[i]``.

    ``x`` and ``y`` are int64; their bits are hashed as unsigned words.
    """
    for i in numba.prange(out.shape[0]):
        h = np.uint64(16) * MURMUR_M
        h = (h ^ _murmur_mix(np.uint64(x[i]))) * MURMUR_M
        h = (h ^ _murmur_mix(np.uint64(y[i]))) * MURMUR_M
        out[i] = _murmur_finish(h)


# ---------------------------------------------------------------------------------------------
# reference twins on Python integers
# (``_u64`` wraps a Python integer to 64 bits; ``s`` is the string as ``bytes``)


def _u64(value):
    return value & MASK64


def _ref_fetch64(s, i):
    return int.from_bytes(s[i : i + 8], "little")


def _ref_fetch32(s, i):
    return int.from_bytes(s[i : i + 4], "little")


def _ref_rotate(value, shift):
    return _u64((value >> shift) | (value << (64 - shift)))


def _ref_shift_mix(value):
    return value ^ (value >> 47)


def _ref_hash_len16(u, v, mul):
    a = _ref_shift_mix(_u64((u ^ v) * mul))
    b = _ref_shift_mix(_u64((v ^ a) * mul))
    return _u64(b * mul)


def _ref_farm_len0to16(s):
    n, k0, k2 = len(s), int(K0), int(K2)
    mul = k2 + 2 * n
    if n >= 8:
        a, b = _u64(_ref_fetch64(s, 0) + k2), _ref_fetch64(s, n - 8)
        c = _u64(_ref_rotate(b, 37) * mul + a)
        d = _u64((_ref_rotate(a, 25) + b) * mul)
        return _ref_hash_len16(c, d, mul)
    if n >= 4:
        return _ref_hash_len16(n + (_ref_fetch32(s, 0) << 3), _ref_fetch32(s, n - 4), mul)
    if n > 0:
        y, z = s[0] + (s[n >> 1] << 8), n + (s[n - 1] << 2)
        return _u64(_ref_shift_mix(_u64(y * k2) ^ _u64(z * k0)) * k2)
    return k2


def _ref_farm_len17to32(s):
    n, k1, k2 = len(s), int(K1), int(K2)
    mul = k2 + 2 * n
    a, b = _u64(_ref_fetch64(s, 0) * k1), _ref_fetch64(s, 8)
    c, d = _u64(_ref_fetch64(s, n - 8) * mul), _u64(_ref_fetch64(s, n - 16) * k2)
    u = _u64(_ref_rotate(_u64(a + b), 43) + _ref_rotate(c, 30) + d)
    return _ref_hash_len16(u, _u64(a + _ref_rotate(_u64(b + k2), 18) + c), mul)


def _ref_farm_len33to64(s):
    n, k2 = len(s), int(K2)
    mul = k2 + 2 * n
    a, b = _u64(_ref_fetch64(s, 0) * k2), _ref_fetch64(s, 8)
    c, d = _u64(_ref_fetch64(s, n - 8) * mul), _u64(_ref_fetch64(s, n - 16) * k2)
    y = _u64(_ref_rotate(_u64(a + b), 43) + _ref_rotate(c, 30) + d)
    z = _ref_hash_len16(y, _u64(a + _ref_rotate(_u64(b + k2), 18) + c), mul)
    e, f = _u64(_ref_fetch64(s, 16) * mul), _ref_fetch64(s, 24)
    g = _u64((y + _ref_fetch64(s, n - 32)) * mul)
    h = _u64((z + _ref_fetch64(s, n - 24)) * mul)
    u = _u64(_ref_rotate(_u64(e + f), 43) + _ref_rotate(g, 30) + h)
    return _ref_hash_len16(u, _u64(e + _ref_rotate(_u64(f + a), 18) + g), mul)


def _ref_weak_hash_len32_with_seeds(s, i, a, b):
    w, x, y, z = (_ref_fetch64(s, i + 8 * j) for j in range(4))
    a = _u64(a + w)
    b = _ref_rotate(_u64(b + a + z), 21)
    c = a
    a = _u64(a + x + y)
    b = _u64(b + _ref_rotate(a, 44))
    return _u64(a + z), _u64(b + c)


def _ref_farm_block(s, i, state, mul, last):
    """One 64-byte block at ``i`` of the long-string loop; ``last`` marks the final block."""
    x, y, z, (v0, v1), (w0, w1) = state
    scale = 9 if last else 1
    x = _u64(_ref_rotate(_u64(x + y + v0 + _ref_fetch64(s, i + 8)), 37) * mul)
    y = _u64(_ref_rotate(_u64(y + v1 + _ref_fetch64(s, i + 48)), 42) * mul)
    x ^= _u64(w1 * scale)
    y = _u64(y + v0 * scale + _ref_fetch64(s, i + 40))
    z = _u64(_ref_rotate(_u64(z + w0), 33) * mul)
    v = _ref_weak_hash_len32_with_seeds(s, i, _u64(v1 * mul), _u64(x + w0))
    w = _ref_weak_hash_len32_with_seeds(s, i + 32, _u64(z + w1), _u64(y + _ref_fetch64(s, i + 16)))
    return z, y, x, v, w  # x and z swap


def _ref_farm_long(s):
    """Fingerprint64 of more than 64 bytes: 64-byte blocks, then the last 64 bytes."""
    n, k0, k1, k2, seed = len(s), int(K0), int(K1), int(K2), int(FARM_SEED)
    y = _u64(seed * k1 + 113)
    z = _u64(_ref_shift_mix(_u64(y * k2 + 113)) * k2)
    x = _u64(seed * k2 + _ref_fetch64(s, 0))
    state = (x, y, z, (0, 0), (0, 0))
    for i in range(0, (n - 1) // 64 * 64, 64):
        state = _ref_farm_block(s, i, state, k1, last=False)
    x, y, z, (v0, v1), (w0, w1) = state
    mul = k1 + ((z & 0xFF) << 1)
    w0 = _u64(w0 + ((n - 1) & 63))
    v0 = _u64(v0 + w0)
    w0 = _u64(w0 + v0)
    state = _ref_farm_block(s, n - 64, (x, y, z, (v0, v1), (w0, w1)), mul, last=True)
    x, y, z, (v0, v1), (w0, w1) = state
    first = _u64(_ref_hash_len16(v0, w0, mul) + _ref_shift_mix(y) * k0 + z)
    return _ref_hash_len16(first, _u64(_ref_hash_len16(v1, w1, mul) + x), mul)


def _ref_farm_fingerprint(s):
    if len(s) <= 16:
        return _ref_farm_len0to16(s)
    if len(s) <= 32:
        return _ref_farm_len17to32(s)
    if len(s) <= 64:
        return _ref_farm_len33to64(s)
    return _ref_farm_long(s)


def _ref_murmur64a(s):
    m, n = int(MURMUR_M), len(s)
    h = _u64(n * m)
    body = n - n % 8
    for i in range(0, body, 8):
        k = _u64(_ref_fetch64(s, i) * m)
        k = _u64((k ^ (k >> 47)) * m)
        h = _u64((h ^ k) * m)
    if n % 8:
        h = _u64((h ^ int.from_bytes(s[body:], "little")) * m)
    h = _u64((h ^ (h >> 47)) * m)
    return h ^ (h >> 47)


def _ref_strings(data, offsets):
    return (bytes(data[offsets[i] : offsets[i + 1]]) for i in range(len(offsets) - 1))


def farm_fingerprint64_reference(data, offsets, out):
    """Twin of :func:`farm_fingerprint64`."""
    for i, s in enumerate(_ref_strings(data, offsets)):
        out[i] = _ref_farm_fingerprint(s)


def murmur_hash64a_reference(data, offsets, out):
    """Twin of :func:`murmur_hash64a`."""
    for i, s in enumerate(_ref_strings(data, offsets)):
        out[i] = _ref_murmur64a(s)


def murmur_pair_reference(x, y, out):
    """Twin of :func:`murmur_pair`."""
    for i in range(len(out)):
        pair = int(x[i]).to_bytes(8, "little", signed=True)
        pair += int(y[i]).to_bytes(8, "little", signed=True)
        out[i] = _ref_murmur64a(pair)

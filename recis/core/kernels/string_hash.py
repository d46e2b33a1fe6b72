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
K_MUL = np.uint64(0x9DDFEA08EB382D69)
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
    word = np.uint64(0)
    for k in range(8):
        word |= np.uint64(data[i + k]) << np.uint64(8 * k)
    return word


@numba.njit
def _fetch32(data, i):
    """Little-endian 32-bit word at byte ``i``, widened to 64 bits."""
    word = np.uint64(0)
    for k in range(4):
        word |= np.uint64(data[i + k]) << np.uint64(8 * k)
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
def _farm_long(data, s, n):
    """Fingerprint64 of more than 64 bytes: 64-byte blocks, then the last 64 bytes."""
    y = FARM_SEED * K1 + np.uint64(113)
    z = _shift_mix(y * K2 + np.uint64(113)) * K2
    v0 = v1 = w0 = w1 = np.uint64(0)
    x = FARM_SEED * K2 + _fetch64(data, s)
    end = s + ((n - 1) // 64) * 64
    last64 = end + ((n - 1) & 63) - 63
    while s != end:
        x = _rotate(x + y + v0 + _fetch64(data, s + 8), 37) * K1
        y = _rotate(y + v1 + _fetch64(data, s + 48), 42) * K1
        x ^= w1
        y += v0 + _fetch64(data, s + 40)
        z = _rotate(z + w0, 33) * K1
        v0, v1 = _weak_hash_len32_with_seeds(data, s, v1 * K1, x + w0)
        w0, w1 = _weak_hash_len32_with_seeds(data, s + 32, z + w1, y + _fetch64(data, s + 16))
        x, z = z, x
        s += 64
    mul = K1 + ((z & np.uint64(0xFF)) << np.uint64(1))
    s = last64
    w0 += np.uint64((n - 1) & 63)
    v0 += w0
    w0 += v0
    x = _rotate(x + y + v0 + _fetch64(data, s + 8), 37) * mul
    y = _rotate(y + v1 + _fetch64(data, s + 48), 42) * mul
    x ^= w1 * np.uint64(9)
    y += v0 * np.uint64(9) + _fetch64(data, s + 40)
    z = _rotate(z + w0, 33) * mul
    v0, v1 = _weak_hash_len32_with_seeds(data, s, v1 * mul, x + w0)
    w0, w1 = _weak_hash_len32_with_seeds(data, s + 32, z + w1, y + _fetch64(data, s + 16))
    x, z = z, x
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


def _ref_fetch(data, i, width):
    return int.from_bytes(bytes(data[i : i + width]), "little")


def _ref_rotate(value, shift):
    return ((value >> shift) | (value << (64 - shift))) & MASK64


def _ref_shift_mix(value):
    return value ^ (value >> 47)


def _ref_hash_len16(u, v, mul):
    a = _ref_shift_mix(((u ^ v) * mul) & MASK64)
    b = _ref_shift_mix(((v ^ a) * mul) & MASK64)
    return (b * mul) & MASK64


def _ref_farm_short(s: bytes):
    """Fingerprint64 of at most 64 bytes."""
    n, k0, k1, k2 = len(s), int(K0), int(K1), int(K2)
    mul = k2 + 2 * n
    fetch64 = [_ref_fetch(s, i, 8) for i in range(max(n - 7, 0))]
    if n > 32:
        a, b = fetch64[0] * k2 & MASK64, fetch64[8]
        c, d = fetch64[n - 8] * mul & MASK64, fetch64[n - 16] * k2 & MASK64
        y = (_ref_rotate((a + b) & MASK64, 43) + _ref_rotate(c, 30) + d) & MASK64
        z = _ref_hash_len16(y, (a + _ref_rotate((b + k2) & MASK64, 18) + c) & MASK64, mul)
        e, f = fetch64[16] * mul & MASK64, fetch64[24]
        g = (y + fetch64[n - 32]) * mul & MASK64
        h = (z + fetch64[n - 24]) * mul & MASK64
        u = _ref_rotate((e + f) & MASK64, 43) + _ref_rotate(g, 30) + h
        return _ref_hash_len16(u & MASK64, (e + _ref_rotate((f + a) & MASK64, 18) + g) & MASK64, mul)
    if n > 16:
        a, b = fetch64[0] * k1 & MASK64, fetch64[8]
        c, d = fetch64[n - 8] * mul & MASK64, fetch64[n - 16] * k2 & MASK64
        u = (_ref_rotate((a + b) & MASK64, 43) + _ref_rotate(c, 30) + d) & MASK64
        return _ref_hash_len16(u, (a + _ref_rotate((b + k2) & MASK64, 18) + c) & MASK64, mul)
    if n >= 8:
        a, b = (fetch64[0] + k2) & MASK64, fetch64[n - 8]
        c = (_ref_rotate(b, 37) * mul + a) & MASK64
        d = ((_ref_rotate(a, 25) + b) * mul) & MASK64
        return _ref_hash_len16(c, d, mul)
    if n >= 4:
        u = n + (_ref_fetch(s, 0, 4) << 3)
        return _ref_hash_len16(u, _ref_fetch(s, n - 4, 4), mul)
    if n > 0:
        y, z = s[0] + (s[n >> 1] << 8), n + (s[n - 1] << 2)
        return _ref_shift_mix(((y * k2) ^ (z * k0)) & MASK64) * k2 & MASK64
    return k2


def _ref_weak_hash_len32_with_seeds(s: bytes, i, a, b):
    w, x, y, z = (_ref_fetch(s, i + 8 * j, 8) for j in range(4))
    a = (a + w) & MASK64
    b = _ref_rotate((b + a + z) & MASK64, 21)
    c = a
    a = (a + x + y) & MASK64
    b = (b + _ref_rotate(a, 44)) & MASK64
    return [(a + z) & MASK64, (b + c) & MASK64]


def _ref_farm_long(s: bytes):
    """Fingerprint64 of more than 64 bytes."""
    n, k0, k1, k2, seed = len(s), int(K0), int(K1), int(K2), int(FARM_SEED)
    y = (seed * k1 + 113) & MASK64
    z = _ref_shift_mix((y * k2 + 113) & MASK64) * k2 & MASK64
    v, w = [0, 0], [0, 0]
    x = (seed * k2 + _ref_fetch(s, 0, 8)) & MASK64
    for i in range(0, (n - 1) // 64 * 64, 64):
        x = _ref_rotate((x + y + v[0] + _ref_fetch(s, i + 8, 8)) & MASK64, 37) * k1 & MASK64
        y = _ref_rotate((y + v[1] + _ref_fetch(s, i + 48, 8)) & MASK64, 42) * k1 & MASK64
        x ^= w[1]
        y = (y + v[0] + _ref_fetch(s, i + 40, 8)) & MASK64
        z = _ref_rotate((z + w[0]) & MASK64, 33) * k1 & MASK64
        v = _ref_weak_hash_len32_with_seeds(s, i, v[1] * k1 & MASK64, (x + w[0]) & MASK64)
        w_seed = (y + _ref_fetch(s, i + 16, 8)) & MASK64
        w = _ref_weak_hash_len32_with_seeds(s, i + 32, (z + w[1]) & MASK64, w_seed)
        x, z = z, x
    mul = k1 + ((z & 0xFF) << 1)
    i = n - 64
    w[0] = (w[0] + ((n - 1) & 63)) & MASK64
    v[0] = (v[0] + w[0]) & MASK64
    w[0] = (w[0] + v[0]) & MASK64
    x = _ref_rotate((x + y + v[0] + _ref_fetch(s, i + 8, 8)) & MASK64, 37) * mul & MASK64
    y = _ref_rotate((y + v[1] + _ref_fetch(s, i + 48, 8)) & MASK64, 42) * mul & MASK64
    x ^= w[1] * 9 & MASK64
    y = (y + v[0] * 9 + _ref_fetch(s, i + 40, 8)) & MASK64
    z = _ref_rotate((z + w[0]) & MASK64, 33) * mul & MASK64
    v = _ref_weak_hash_len32_with_seeds(s, i, v[1] * mul & MASK64, (x + w[0]) & MASK64)
    w_seed = (y + _ref_fetch(s, i + 16, 8)) & MASK64
    w = _ref_weak_hash_len32_with_seeds(s, i + 32, (z + w[1]) & MASK64, w_seed)
    x, z = z, x
    first = (_ref_hash_len16(v[0], w[0], mul) + _ref_shift_mix(y) * k0 + z) & MASK64
    return _ref_hash_len16(first, (_ref_hash_len16(v[1], w[1], mul) + x) & MASK64, mul)


def _ref_murmur64a(s: bytes):
    m = int(MURMUR_M)
    h = len(s) * m & MASK64
    body = len(s) - len(s) % 8
    for i in range(0, body, 8):
        k = _ref_fetch(s, i, 8) * m & MASK64
        k = (k ^ (k >> 47)) * m & MASK64
        h = (h ^ k) * m & MASK64
    if len(s) % 8:
        h = (h ^ _ref_fetch(s, body, 8)) * m & MASK64  # the tail, zero-extended
    h = (h ^ (h >> 47)) * m & MASK64
    return h ^ (h >> 47)


def _ref_strings(data, offsets):
    return (bytes(data[offsets[i] : offsets[i + 1]]) for i in range(len(offsets) - 1))


def farm_fingerprint64_reference(data, offsets, out):
    """Twin of :func:`farm_fingerprint64`."""
    for i, s in enumerate(_ref_strings(data, offsets)):
        out[i] = _ref_farm_short(s) if len(s) <= 64 else _ref_farm_long(s)


def murmur_hash64a_reference(data, offsets, out):
    """Twin of :func:`murmur_hash64a`."""
    for i, s in enumerate(_ref_strings(data, offsets)):
        out[i] = _ref_murmur64a(s)


def murmur_pair_reference(x, y, out):
    """Twin of :func:`murmur_pair`."""
    for i in range(len(out)):
        out[i] = _ref_murmur64a(int(x[i]).to_bytes(8, "little", signed=True) + int(y[i]).to_bytes(8, "little", signed=True))

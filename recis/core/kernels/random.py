"""Counter-based random numbers: an embedding row's initial value is a pure function of its id.

Element ``j`` of the row of ``id`` depends only on (seed, table hash, id, j) and the distribution's
parameters: not on the other ids of the batch, their order, the batch size, the row width or the
process. A GPU port must follow this spec exactly; it reproduces every value bit for bit.

Integers are unsigned 64-bit, arithmetic wraps modulo 2**64 and ``>>`` is a logical shift::

    mix64(x):                         # SplitMix64 finalizer (Stafford's "Mix13")
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9
        x = (x ^ (x >> 27)) * 0x94D049BB133111EB
        return x ^ (x >> 31)
    stream = mix64(seed ^ table_hash)         # once per (seed, table)
    key    = mix64(stream ^ uint64(id))       # uint64(id): the two's-complement bits of the int64
    counter(j, t, lane) = (t << 33) | (j << 1) | lane    # element j < 2**32, attempt t, lane 0/1
    bits(key, c) = mix64(key + (c + 1) * 0x9E3779B97F4A7C15)

Floats are IEEE float32 with every operation rounded to nearest separately (no fused
multiply-add, subnormals kept), so the CPU and the GPU compute the same bits. ``u24(w) = w >> 40``
(the top 24 bits)::

    uniform(w)  = float32(u24(w)) * 2**-24           # in [0, 1)
    positive(w) = float32(u24(w) + 1) * 2**-24       # in (0, 1]: log never sees 0
    normal(key, j, t) = sqrt(-2 * ln(positive(bits(key, counter(j, t, 0)))))
                        * cos_turns(u24(bits(key, counter(j, t, 1))))

``normal`` is Box–Muller with one pair of draws per element, keeping only the cosine branch.
``ln`` and ``cos_turns`` use only + - * / on float32, in the order written here:

    ln(x):  m, e = frexp(x)                         # x = m * 2**e, m in [0.5, 1)
            if m < SQRT_HALF: m, e = 2 * m, e - 1
            f = m - 1;  s = f / (f + 2);  z = s * s;  t = 2 * s
            p = z * (1/3 + z * (1/5 + z * (1/7 + z * (1/9))))
            return e * LN2_HI + (e * LN2_LO + (t + t * p))
    cos_turns(j):  cos(2π j / 2**24) for a 24-bit j: quadrant q = j >> 22, r = j & (2**22 - 1);
            r <= 2**19: c, s = COS(a), SIN(a) with a = float32(r) * STEP
            otherwise:  c, s = SIN(a), COS(a) with a = float32(2**22 - r) * STEP
            return (c, -s, -c, s)[q]
    COS(a) = 1 + z * (-1/2 + z * (1/24 + z * (-1/720 + z * (1/40320 + z * (-1/3628800)))))
    SIN(a) = a + (a * z) * (-1/6 + z * (1/120 + z * (-1/5040 + z * (1/362880
             + z * (-1/39916800)))))          with z = a * a

Every constant is the float32 nearest its value (``STEP`` = 2π / 2**24, ``LN2_HI`` =
0.693145751953125 and ``LN2_LO`` = ln 2 - LN2_HI); the distributions' parameters are rounded to
float32 first. Element ``j`` of each distribution:

- uniform(low, high): ``low + (high - low) * uniform(bits(key, counter(j, 0, 0)))``
- normal(mean, std): ``mean + std * normal(key, j, 0)``
- truncated normal(mean, std, a, b): the first ``x_t = mean + std * normal(key, j, t)`` for
  ``t = 0, 1, ..., 63`` with ``a <= x_t <= b``; when none is, ``min(max(x_63, a), b)``.

Kernels fill ``out[n, dim]`` for ``n`` ids of several tables at once: id ``i`` belongs to the
table whose stream is ``streams[tags[i * tag_stride]]`` (a stride of 0: one table for all). Each
kernel has a NumPy twin named ``<kernel>_reference``.

>>> mix64(GOLDEN_GAMMA) == 0xE220A8397B1DCDAF  # SplitMix64's first output for seed 0
True
"""

from __future__ import annotations

import math

import numba
import numpy as np

GOLDEN_GAMMA = np.uint64(0x9E3779B97F4A7C15)
TRUNCATED_NORMAL_ATTEMPTS = 64

_F = np.float32
_MIX_MULTIPLIER_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_MULTIPLIER_2 = np.uint64(0x94D049BB133111EB)
_MIX_SHIFT_1 = np.uint64(30)
_MIX_SHIFT_2 = np.uint64(27)
_MIX_SHIFT_3 = np.uint64(31)
_ATTEMPT_SHIFT = np.uint64(33)
_TOP24_SHIFT = np.uint64(40)
_ONE = np.uint64(1)
_QUADRANT_SHIFT = np.uint64(22)
_QUARTER_MASK = np.uint64((1 << 22) - 1)
_QUARTER = np.uint64(1 << 22)
_EIGHTH = np.uint64(1 << 19)
_TWO_POW_MINUS_24 = _F(2.0**-24)
_STEP = _F(2.0 * math.pi / 2**24)
_SQRT_HALF = _F(math.sqrt(0.5))
_LN2_HI = _F(0.693145751953125)
_LN2_LO = _F(math.log(2.0) - 0.693145751953125)
_LOG = tuple(_F(1.0 / k) for k in (3, 5, 7, 9))
_COS = tuple(_F(c) for c in (-1 / 2, 1 / 24, -1 / 720, 1 / 40320, -1 / 3628800))
_SIN = tuple(_F(c) for c in (-1 / 6, 1 / 120, -1 / 5040, 1 / 362880, -1 / 39916800))
_L3, _L5, _L7, _L9 = _LOG
_C2, _C4, _C6, _C8, _C10 = _COS
_S3, _S5, _S7, _S9, _S11 = _SIN


def constants() -> dict[str, np.float32]:
    """The float32 constants of the spec by name (the GPU's ``cuda/random.cuh`` spells the same
    values; a test compares them)."""
    names = ("STEP", "SQRT_HALF", "LN2_HI", "LN2_LO", "TWO_POW_MINUS_24")
    out = {name: globals()[f"_{name}"] for name in names}
    out.update({f"LOG{k}": c for k, c in zip((3, 5, 7, 9), _LOG, strict=True)})
    out.update({f"COS{k}": c for k, c in zip((2, 4, 6, 8, 10), _COS, strict=True)})
    out.update({f"SIN{k}": c for k, c in zip((3, 5, 7, 9, 11), _SIN, strict=True)})
    return out


@numba.njit(cache=True)
def mix64(x):
    """SplitMix64's finalizer of a uint64: a bijection with full avalanche."""
    x = (x ^ (x >> _MIX_SHIFT_1)) * _MIX_MULTIPLIER_1
    x = (x ^ (x >> _MIX_SHIFT_2)) * _MIX_MULTIPLIER_2
    return x ^ (x >> _MIX_SHIFT_3)


def mix64_reference(x):
    """NumPy twin of :func:`mix64`, elementwise over a uint64 array (NumPy or, unchanged in
    its module, CuPy)."""
    x = x if getattr(x, "dtype", None) == np.uint64 else np.asarray(x, dtype=np.uint64)
    with np.errstate(over="ignore"):  # wrap-around multiplication is intended
        x = (x ^ (x >> _MIX_SHIFT_1)) * _MIX_MULTIPLIER_1
        x = (x ^ (x >> _MIX_SHIFT_2)) * _MIX_MULTIPLIER_2
    return x ^ (x >> _MIX_SHIFT_3)


@numba.njit(cache=True)
def _bits(key, element, attempt, lane):
    counter = (np.uint64(attempt) << _ATTEMPT_SHIFT) | (np.uint64(element) << _ONE) | lane
    return mix64(key + (counter + _ONE) * GOLDEN_GAMMA)


@numba.njit(cache=True)
def _uniform(bits):
    return _F(bits >> _TOP24_SHIFT) * _TWO_POW_MINUS_24


@numba.njit(cache=True)
def _ln(x):
    mantissa, exponent = math.frexp(x)
    m, e = _F(mantissa), _F(exponent)
    if m < _SQRT_HALF:
        m, e = m * _F(2.0), e - _F(1.0)
    f = m - _F(1.0)
    s = f / (f + _F(2.0))
    z, t = s * s, _F(2.0) * s
    p = z * (_L3 + z * (_L5 + z * (_L7 + z * _L9)))
    return e * _LN2_HI + (e * _LN2_LO + (t + t * p))


@numba.njit(cache=True)
def _cos_poly(a):
    z = a * a
    return _F(1.0) + z * (_C2 + z * (_C4 + z * (_C6 + z * (_C8 + z * _C10))))


@numba.njit(cache=True)
def _sin_poly(a):
    z = a * a
    return a + (a * z) * (_S3 + z * (_S5 + z * (_S7 + z * (_S9 + z * _S11))))


@numba.njit(cache=True)
def _cos_turns(j):
    quadrant, r = j >> _QUADRANT_SHIFT, j & _QUARTER_MASK
    if r <= _EIGHTH:
        a = _F(r) * _STEP
        c, s = _cos_poly(a), _sin_poly(a)
    else:
        a = _F(_QUARTER - r) * _STEP
        c, s = _sin_poly(a), _cos_poly(a)
    if quadrant == 0:
        return c
    if quadrant == 1:
        return -s
    if quadrant == 2:
        return -c
    return s


@numba.njit(cache=True)
def _normal(key, element, attempt):
    positive = _F((_bits(key, element, attempt, np.uint64(0)) >> _TOP24_SHIFT) + _ONE)
    radius = np.sqrt(_F(-2.0) * _ln(positive * _TWO_POW_MINUS_24))
    return radius * _cos_turns(_bits(key, element, attempt, _ONE) >> _TOP24_SHIFT)


@numba.njit(cache=True)
def _truncated_normal(key, element, mean, std, a, b):
    x = mean
    for attempt in range(TRUNCATED_NORMAL_ATTEMPTS):
        x = mean + std * _normal(key, element, attempt)
        if a <= x <= b:
            return x
    return min(max(x, a), b)


@numba.njit(cache=True, parallel=True)
def fill_constant(value, out):
    """Set every element of ``out[n, dim]`` to ``value``."""
    for i in numba.prange(out.shape[0]):
        out[i, :] = value


def fill_constant_reference(value, out):
    """NumPy twin of :func:`fill_constant`."""
    out[...] = value


@numba.njit(cache=True, parallel=True)
def fill_uniform(ids, streams, tags, tag_stride, low, high, out):
    """Row ``i`` of ``out`` gets uniform(low, high) values for ``ids[i]`` (see module spec)."""
    low, high = _F(low), _F(high)
    width = high - low
    for i in numba.prange(ids.shape[0]):
        key = mix64(streams[tags[i * tag_stride]] ^ np.uint64(ids[i]))
        for j in range(out.shape[1]):
            out[i, j] = low + width * _uniform(_bits(key, j, 0, np.uint64(0)))


@numba.njit(cache=True, parallel=True)
def fill_normal(ids, streams, tags, tag_stride, mean, std, out):
    """Row ``i`` of ``out`` gets normal(mean, std) values for ``ids[i]`` (see module spec)."""
    mean, std = _F(mean), _F(std)
    for i in numba.prange(ids.shape[0]):
        key = mix64(streams[tags[i * tag_stride]] ^ np.uint64(ids[i]))
        for j in range(out.shape[1]):
            out[i, j] = mean + std * _normal(key, j, 0)


@numba.njit(cache=True, parallel=True)
def fill_truncated_normal(ids, streams, tags, tag_stride, mean, std, a, b, out):
    """Row ``i`` of ``out`` gets normal(mean, std) values within [a, b] for ``ids[i]``."""
    mean, std, a, b = _F(mean), _F(std), _F(a), _F(b)
    for i in numba.prange(ids.shape[0]):
        key = mix64(streams[tags[i * tag_stride]] ^ np.uint64(ids[i]))
        for j in range(out.shape[1]):
            out[i, j] = _truncated_normal(key, j, mean, std, a, b)


def stream_reference(seed, table_hash) -> np.uint64:
    """The stream of a (seed, table): ``mix64(seed ^ table_hash)``."""
    return mix64_reference(np.uint64(seed) ^ np.uint64(table_hash))[()]


def _keys_reference(ids, streams, tags, tag_stride):
    per_id = np.asarray(streams, np.uint64)[tags[np.arange(len(ids)) * tag_stride]]
    return mix64_reference(per_id ^ np.asarray(ids, dtype=np.int64).view(np.uint64))


def _bits_reference(keys, dim, attempt, lane):
    elements = np.arange(dim, dtype=np.uint64)
    counters = (np.uint64(attempt) << _ATTEMPT_SHIFT) | (elements << _ONE) | np.uint64(lane)
    with np.errstate(over="ignore"):
        return mix64_reference(keys[:, None] + (counters + _ONE) * GOLDEN_GAMMA)


def _uniform_reference(bits):
    return (bits >> _TOP24_SHIFT).astype(np.float32) * _TWO_POW_MINUS_24


def _ln_reference(x):
    mantissa, exponent = np.frexp(x)
    low = mantissa < _SQRT_HALF
    m = np.where(low, mantissa * _F(2.0), mantissa)
    e = np.where(low, exponent - 1, exponent).astype(np.float32)
    f = m - _F(1.0)
    s = f / (f + _F(2.0))
    z, t = s * s, _F(2.0) * s
    p = z * (_L3 + z * (_L5 + z * (_L7 + z * _L9)))
    return e * _LN2_HI + (e * _LN2_LO + (t + t * p))


def _cos_poly_reference(a):
    z = a * a
    return _F(1.0) + z * (_C2 + z * (_C4 + z * (_C6 + z * (_C8 + z * _C10))))


def _sin_poly_reference(a):
    z = a * a
    return a + (a * z) * (_S3 + z * (_S5 + z * (_S7 + z * (_S9 + z * _S11))))


def _cos_turns_reference(j):
    quadrant, r = j >> _QUADRANT_SHIFT, j & _QUARTER_MASK
    near = r <= _EIGHTH
    a = np.where(near, r, _QUARTER - r).astype(np.float32) * _STEP
    cos_a, sin_a = _cos_poly_reference(a), _sin_poly_reference(a)
    c, s = np.where(near, cos_a, sin_a), np.where(near, sin_a, cos_a)
    return np.choose(quadrant.astype(np.intp), [c, -s, -c, s])


def _normal_reference(keys, dim, attempt):
    top = _bits_reference(keys, dim, attempt, 0) >> _TOP24_SHIFT
    positive = (top + _ONE).astype(np.float32) * _TWO_POW_MINUS_24
    radius = np.sqrt(_F(-2.0) * _ln_reference(positive))
    return radius * _cos_turns_reference(_bits_reference(keys, dim, attempt, 1) >> _TOP24_SHIFT)


def fill_uniform_reference(ids, streams, tags, tag_stride, low, high, out):
    """NumPy twin of :func:`fill_uniform`."""
    keys = _keys_reference(ids, streams, tags, tag_stride)
    low, high = _F(low), _F(high)
    out[...] = low + (high - low) * _uniform_reference(_bits_reference(keys, out.shape[1], 0, 0))


def fill_normal_reference(ids, streams, tags, tag_stride, mean, std, out):
    """NumPy twin of :func:`fill_normal`."""
    keys = _keys_reference(ids, streams, tags, tag_stride)
    out[...] = _F(mean) + _F(std) * _normal_reference(keys, out.shape[1], 0)


def fill_truncated_normal_reference(ids, streams, tags, tag_stride, mean, std, a, b, out):
    """NumPy twin of :func:`fill_truncated_normal`."""
    keys = _keys_reference(ids, streams, tags, tag_stride)
    mean, std, a, b = _F(mean), _F(std), _F(a), _F(b)
    values = np.empty(out.shape, dtype=np.float32)
    pending = np.ones(out.shape, dtype=bool)
    for attempt in range(TRUNCATED_NORMAL_ATTEMPTS):
        draws = mean + std * _normal_reference(keys, out.shape[1], attempt)
        values[pending] = draws[pending]
        pending &= ~((a <= draws) & (draws <= b))
        if not pending.any():
            break
    out[...] = np.minimum(np.maximum(values, a), b)

"""Counter-based random numbers: an embedding row's initial value is a pure function of its id.

Element ``j`` of the row of ``id`` depends only on (seed, table hash, id, j) and the distribution's
parameters: not on the other ids of the batch, their order, the batch size, the row width or the
process. A GPU port must follow this spec exactly; it reproduces the random bits bit for bit and
the floats within one unit in the last place.

Integers are unsigned 64-bit, arithmetic wraps modulo 2**64 and ``>>`` is a logical shift::

    mix64(x):                         # SplitMix64 finalizer (Stafford's "Mix13")
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9
        x = (x ^ (x >> 27)) * 0x94D049BB133111EB
        return x ^ (x >> 31)
    stream = mix64(seed ^ table_hash)         # once per (seed, table)
    key    = mix64(stream ^ uint64(id))       # uint64(id): the two's-complement bits of the int64
    counter(j, t, lane) = (t << 33) | (j << 1) | lane    # element j < 2**32, attempt t, lane 0/1
    bits(key, c) = mix64(key + (c + 1) * 0x9E3779B97F4A7C15)

Floats are IEEE doubles with every operation rounded separately (no fused multiply-add); the
result is rounded to nearest into the output dtype::

    uniform(w)  = double(w >> 11) * 2**-53           # in [0, 1)
    positive(w) = double((w >> 11) + 1) * 2**-53     # in (0, 1]: log never sees 0
    normal(key, j, t) = sqrt(-2 * log(positive(bits(key, counter(j, t, 0)))))
                        * cos(TWO_PI * uniform(bits(key, counter(j, t, 1))))

``normal`` is Box–Muller with one pair of draws per element, keeping only the cosine branch, and
``TWO_PI`` is the double nearest 2π (6.283185307179586). Element ``j`` of each distribution:

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
TWO_PI = 2.0 * math.pi
TRUNCATED_NORMAL_ATTEMPTS = 64

_MIX_MULTIPLIER_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_MULTIPLIER_2 = np.uint64(0x94D049BB133111EB)
_MIX_SHIFT_1 = np.uint64(30)
_MIX_SHIFT_2 = np.uint64(27)
_MIX_SHIFT_3 = np.uint64(31)
_ATTEMPT_SHIFT = np.uint64(33)
_MANTISSA_SHIFT = np.uint64(11)
_ONE = np.uint64(1)
_TWO_POW_MINUS_53 = 2.0**-53


@numba.njit(cache=True)
def mix64(x):
    """SplitMix64's finalizer of a uint64: a bijection with full avalanche."""
    x = (x ^ (x >> _MIX_SHIFT_1)) * _MIX_MULTIPLIER_1
    x = (x ^ (x >> _MIX_SHIFT_2)) * _MIX_MULTIPLIER_2
    return x ^ (x >> _MIX_SHIFT_3)


def mix64_reference(x):
    """NumPy twin of :func:`mix64`, elementwise over a uint64 array."""
    x = np.asarray(x, dtype=np.uint64)
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
    return np.float64(bits >> _MANTISSA_SHIFT) * _TWO_POW_MINUS_53


@numba.njit(cache=True)
def _positive(bits):
    return np.float64((bits >> _MANTISSA_SHIFT) + _ONE) * _TWO_POW_MINUS_53


@numba.njit(cache=True)
def _normal(key, element, attempt):
    radius = math.sqrt(-2.0 * math.log(_positive(_bits(key, element, attempt, np.uint64(0)))))
    return radius * math.cos(TWO_PI * _uniform(_bits(key, element, attempt, _ONE)))


@numba.njit(cache=True)
def _truncated_normal(key, element, mean, std, a, b):
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
    for i in numba.prange(ids.shape[0]):
        key = mix64(streams[tags[i * tag_stride]] ^ np.uint64(ids[i]))
        for j in range(out.shape[1]):
            out[i, j] = low + (high - low) * _uniform(_bits(key, j, 0, np.uint64(0)))


@numba.njit(cache=True, parallel=True)
def fill_normal(ids, streams, tags, tag_stride, mean, std, out):
    """Row ``i`` of ``out`` gets normal(mean, std) values for ``ids[i]`` (see module spec)."""
    for i in numba.prange(ids.shape[0]):
        key = mix64(streams[tags[i * tag_stride]] ^ np.uint64(ids[i]))
        for j in range(out.shape[1]):
            out[i, j] = mean + std * _normal(key, j, 0)


@numba.njit(cache=True, parallel=True)
def fill_truncated_normal(ids, streams, tags, tag_stride, mean, std, a, b, out):
    """Row ``i`` of ``out`` gets normal(mean, std) values within [a, b] for ``ids[i]``."""
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
    return (bits >> _MANTISSA_SHIFT).astype(np.float64) * _TWO_POW_MINUS_53


def _positive_reference(bits):
    return ((bits >> _MANTISSA_SHIFT) + _ONE).astype(np.float64) * _TWO_POW_MINUS_53


def _normal_reference(keys, dim, attempt):
    radius = np.sqrt(-2.0 * np.log(_positive_reference(_bits_reference(keys, dim, attempt, 0))))
    return radius * np.cos(TWO_PI * _uniform_reference(_bits_reference(keys, dim, attempt, 1)))


def fill_uniform_reference(ids, streams, tags, tag_stride, low, high, out):
    """NumPy twin of :func:`fill_uniform`."""
    keys = _keys_reference(ids, streams, tags, tag_stride)
    out[...] = low + (high - low) * _uniform_reference(_bits_reference(keys, out.shape[1], 0, 0))


def fill_normal_reference(ids, streams, tags, tag_stride, mean, std, out):
    """NumPy twin of :func:`fill_normal`."""
    keys = _keys_reference(ids, streams, tags, tag_stride)
    out[...] = mean + std * _normal_reference(keys, out.shape[1], 0)


def fill_truncated_normal_reference(ids, streams, tags, tag_stride, mean, std, a, b, out):
    """NumPy twin of :func:`fill_truncated_normal`."""
    keys = _keys_reference(ids, streams, tags, tag_stride)
    values = np.empty(out.shape, dtype=np.float64)
    pending = np.ones(out.shape, dtype=bool)
    for attempt in range(TRUNCATED_NORMAL_ATTEMPTS):
        draws = mean + std * _normal_reference(keys, out.shape[1], attempt)
        values[pending] = draws[pending]
        pending &= (draws < a) | (draws > b)
        if not pending.any():
            break
    out[...] = np.clip(values, a, b)

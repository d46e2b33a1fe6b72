"""Random ids and ragged columns for the feature-op tests (CPU, host-built kernels and GPU)."""

from __future__ import annotations

import numpy as np

from recis.core.ragged import Ragged


def random_ids(rng, n: int) -> np.ndarray:
    """int64 ids mixing small repeated values with values spread over the whole range."""
    small = rng.integers(-4, 5, n)
    wide = rng.integers(np.iinfo(np.int64).min, np.iinfo(np.int64).max, n, dtype=np.int64)
    return np.where(rng.random(n) < 0.6, small, wide)


def random_offsets(rng, rows: int, longest: int) -> np.ndarray:
    """Offsets of ``rows`` rows of 0 to ``longest`` items, a fifth of them empty."""
    lengths = rng.integers(0, longest + 1, rows)
    lengths[rng.random(rows) < 0.2] = 0
    return np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)


def random_bits(rng, size: int, dtype) -> np.ndarray:
    """``size`` values of ``dtype`` with random bits."""
    return rng.integers(0, 256, size * np.dtype(dtype).itemsize, dtype=np.uint8).view(dtype)


def random_ragged(rng, rows: int, longest: int, weights: bool, dtype=np.int64) -> Ragged:
    """One ragged level: :func:`random_ids` for int64, random bits for other dtypes."""
    offsets = random_offsets(rng, rows, longest)
    size = int(offsets[-1])
    values = random_ids(rng, size) if dtype == np.int64 else random_bits(rng, size, dtype)
    w = rng.standard_normal(size).astype(np.float32) if weights else None
    return Ragged(values, offsets, w)


def random_sequences(rng, sequences: int, longest: int, weights: bool, dtype) -> Ragged:
    """Two ragged levels (sequences of rows of up to 4 items) of random bits."""
    outer = random_offsets(rng, sequences, longest)
    inner = random_offsets(rng, int(outer[-1]), 4)
    size = int(inner[-1])
    w = rng.standard_normal(size).astype(np.float32) if weights else None
    return Ragged(random_bits(rng, size, dtype), (outer, inner), w)

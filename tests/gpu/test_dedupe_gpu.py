"""The CUDA deduplication against its CPU twin: bitwise equal first positions and inverse index."""

from __future__ import annotations

import numpy as np
import pytest

from recis.core.cuda import dedupe as gpu_kernels
from recis.core.cuda.host_mirror import raise_deferred_errors
from recis.core.cuda.streams import on_stream
from recis.core.dedupe import (
    first_occurrences,
    occurrence_counts,
    scratch_capacity,
    unique_inverse,
)
from recis.core.kernels import dedupe as kernels

pytestmark = pytest.mark.gpu

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
EXTREME_KEYS = [INT64_MIN, INT64_MIN + 1, -1, 0, 1, INT64_MAX - 1, INT64_MAX]


def _batch(rng, size, distinct):
    """``size`` ids drawn from ``distinct`` random int64 values, extremes included."""
    pool = rng.integers(INT64_MIN, INT64_MAX, max(distinct, 1), np.int64, endpoint=True)
    pool[: min(distinct, 7)] = EXTREME_KEYS[: min(distinct, 7)]
    return pool[rng.integers(0, pool.size, size)]


def _check_same(cp, gpu_values, cpu_values):
    np.testing.assert_array_equal(cp.asnumpy(gpu_values), cpu_values)


@pytest.mark.parametrize(
    ("size", "distinct"),
    [
        (0, 1),
        (1, 1),
        (17, 3),
        (5000, 5000),
        (100_000, 700),
        (1 << 20, 1 << 20),
        (1 << 20, 1000),
        (1 << 20, 1),
    ],
)
def test_unique_inverse_matches_cpu(cp, size, distinct):
    rng = np.random.default_rng(size + distinct)
    keys = _batch(rng, size, distinct)
    unique, inverse = unique_inverse(keys)
    gpu_unique, gpu_inverse = unique_inverse(cp.asarray(keys))
    assert isinstance(gpu_unique, cp.ndarray) and isinstance(gpu_inverse, cp.ndarray)
    _check_same(cp, gpu_unique, unique)
    _check_same(cp, gpu_inverse, inverse)


@pytest.mark.parametrize("tag_count", [1, 3, 1 << 15])
def test_first_occurrences_of_tagged_ids_match_cpu(cp, tag_count):
    rng = np.random.default_rng(tag_count)
    keys = _batch(rng, 200_000, 3000)
    tags = rng.integers(0, tag_count, keys.size)
    first, inverse = first_occurrences(keys, tags)
    gpu_first, gpu_inverse = first_occurrences(cp.asarray(keys), cp.asarray(tags))
    _check_same(cp, gpu_first, first)
    _check_same(cp, gpu_inverse, inverse)
    one_tag = first_occurrences(keys, tags=tag_count - 1)
    gpu_one_tag = first_occurrences(cp.asarray(keys), tags=tag_count - 1)
    for got, expected in zip(gpu_one_tag, one_tag, strict=True):
        _check_same(cp, got, expected)


def test_kernel_matches_its_cpu_twin(cp):
    rng = np.random.default_rng(3)
    keys = _batch(rng, 30_000, 4000)
    tags = rng.integers(0, 4, keys.size)
    capacity = scratch_capacity(keys.size)
    shift = 65 - capacity.bit_length()
    first, inverse = np.empty_like(keys), np.empty_like(keys)
    count = kernels.unique_inverse_reference(keys, tags, 1, None, shift, 1, first, inverse)
    scratch = cp.zeros((capacity, 2), np.int64)
    gpu_first, gpu_inverse = cp.empty(keys.size, np.int64), cp.empty(keys.size, np.int64)
    gpu_count = gpu_kernels.unique_inverse(
        cp.asarray(keys), cp.asarray(tags), 1, scratch, shift, 1, gpu_first, gpu_inverse
    )
    assert gpu_count.shape == () and int(gpu_count) == count
    _check_same(cp, gpu_first[:count], first[:count])
    _check_same(cp, gpu_inverse, inverse)


def test_runs_on_the_callers_stream(cp):
    rng = np.random.default_rng(4)
    keys = _batch(rng, 300_000, 20_000)
    expected = unique_inverse(keys)
    stream = cp.cuda.Stream(non_blocking=True)
    with on_stream(stream.ptr):
        got = unique_inverse(cp.asarray(keys))
        stream.synchronize()
    _check_same(cp, got[0], expected[0])
    _check_same(cp, got[1], expected[1])


def test_bad_tags_are_rejected(cp):
    keys = cp.arange(4)
    first, _ = first_occurrences(keys, cp.asarray([0, 1, -1, 2]), padded=True)
    with pytest.raises(ValueError, match=r"tags must lie in .*1 tags of a GPU batch"):
        raise_deferred_errors(wait=True)  # found on the device, raised without stalling it
    assert cp.asnumpy(first).tolist() == [0, 1, 2, 3]  # tag -1 acted as tag 0
    with pytest.raises(ValueError, match="tags must have one entry per key"):
        first_occurrences(keys, cp.asarray([0, 1]))
    with pytest.raises(TypeError, match="tags must be a cupy array"):
        first_occurrences(keys, np.zeros(4, np.int64))


def test_weighted_occurrence_counts_match_cpu(cp):
    rng = np.random.default_rng(9)
    index, weights = rng.integers(0, 50, 1000), rng.integers(0, 2**40, 1000)
    expected = occurrence_counts(index, 60, weights)
    np.testing.assert_array_equal(expected, np.bincount(index, weights, 60).astype(np.int64))
    got = occurrence_counts(cp.asarray(index), 60, cp.asarray(weights))
    assert isinstance(got, cp.ndarray)
    np.testing.assert_array_equal(cp.asnumpy(got), expected)

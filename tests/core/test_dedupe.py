"""Deduplication kernels against their NumPy twins."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recis.core.dedupe import first_occurrences, scratch_capacity, sum_by_index, unique_inverse
from recis.core.kernels import dedupe as kernels
from recis.core.kernels.id_map import region_count

int64s = st.integers(-(2**63), 2**63 - 1)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.one_of(st.integers(-3, 3), int64s), max_size=300))
def test_unique_inverse_matches_twin_and_definition(keys):
    keys = np.array(keys, np.int64)
    unique, inverse = unique_inverse(keys)
    assert unique.tolist() == list(dict.fromkeys(keys.tolist()))
    np.testing.assert_array_equal(unique[inverse], keys)
    twin_first, twin_inverse = np.empty_like(keys), np.empty_like(keys)
    zero_tag = np.zeros(1, np.int64)
    count = kernels.unique_inverse_reference(
        keys, zero_tag, 0, None, 0, 1, twin_first, twin_inverse
    )
    np.testing.assert_array_equal(keys[twin_first[:count]], unique)
    np.testing.assert_array_equal(twin_inverse, inverse)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(-3, 3), st.integers(0, 3)), max_size=200))
def test_first_occurrences_of_tagged_keys_match_twin(pairs):
    keys = np.array([k for k, _ in pairs], np.int64)
    tags = np.array([t for _, t in pairs], np.int64)
    first, inverse = first_occurrences(keys, tags)
    assert [pairs[i] for i in first.tolist()] == list(dict.fromkeys(pairs))
    twin_first, twin_inverse = np.empty_like(keys), np.empty_like(keys)
    count = kernels.unique_inverse_reference(keys, tags, 1, None, 0, 1, twin_first, twin_inverse)
    np.testing.assert_array_equal(twin_first[:count], first)
    np.testing.assert_array_equal(twin_inverse, inverse)


@pytest.mark.parametrize("regions", [1, 2, 8])
def test_unique_inverse_kernel_is_independent_of_regions(regions):
    rng = np.random.default_rng(regions)
    keys = rng.integers(-5000, 5000, 20_000)
    capacity = scratch_capacity(keys.size)
    outputs = []
    tags = rng.integers(0, 3, keys.size)
    for parts in (1, regions):
        first, inverse = np.empty_like(keys), np.empty_like(keys)
        scratch = np.zeros((capacity, 2), np.int64)
        shift = 65 - capacity.bit_length()
        count = kernels.unique_inverse(keys, tags, 1, scratch, shift, parts, first, inverse)
        outputs.append((first[:count].copy(), inverse.copy()))
    np.testing.assert_array_equal(outputs[0][0], outputs[1][0])
    np.testing.assert_array_equal(outputs[0][1], outputs[1][1])
    assert region_count(capacity) >= 1


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 200), st.integers(1, 6), st.integers(1, 50), st.integers(0, 2**32 - 1))
def test_sum_by_index_matches_twin(n, dim, rows, seed):
    rng = np.random.default_rng(seed)
    values = rng.standard_normal((n, dim)).astype(np.float32)
    index = rng.integers(0, rows, n)
    twin = np.zeros((rows, dim), np.float32)
    kernels.sum_by_index_reference(values, index, twin)
    np.testing.assert_array_equal(sum_by_index(values, index, rows), twin)


def test_sum_by_index_rejects_out_of_range_index():
    with pytest.raises(ValueError, match=r"index must lie in \[0, 2\)"):
        sum_by_index(np.ones((2, 1), np.float32), np.array([0, 2]), 2)

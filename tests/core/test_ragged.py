"""Ragged arrays: construction and validation, row lengths, to_dense / from_dense."""

from __future__ import annotations

import itertools

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_array_equal

from recis.core.arrays import ALIGNMENT
from recis.core.kernels import ragged as kernels
from recis.core.ragged import Ragged, as_offsets

HYPOTHESIS = settings(max_examples=60, deadline=None)


def offsets_of(lengths):
    return np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)


def nested_lists(ragged):
    """The rows of a ragged array as nested Python lists, built level by level."""
    rows = ragged.values.tolist()
    for level_offsets in reversed(ragged.offsets):
        rows = [rows[start:stop] for start, stop in itertools.pairwise(level_offsets)]
    return rows


def loop_to_dense(rows, dims, default):
    """Pad nested lists to ``dims`` with plain loops."""
    if len(dims) == 1:
        return list(rows) + [default] * (dims[0] - len(rows))
    padded = [loop_to_dense(row, dims[1:], default) for row in rows]
    return padded + [loop_to_dense([], dims[1:], default)] * (dims[0] - len(rows))


@st.composite
def raggeds(draw, max_levels=2, low=-5):
    levels = draw(st.integers(1, max_levels))
    num_rows = draw(st.integers(0, 5))
    offsets = []
    for _ in range(levels):
        lengths = draw(st.lists(st.integers(0, 4), min_size=num_rows, max_size=num_rows))
        offsets.append(offsets_of(lengths))
        num_rows = sum(lengths)
    items = draw(st.lists(st.integers(low, 5), min_size=num_rows, max_size=num_rows))
    return Ragged(np.array(items, dtype=np.int64), tuple(offsets))


# --- Construction -------------------------------------------------------------------------------


def test_properties_of_a_two_level_ragged_array():
    weights = np.array([0.5, 1.0, 2.0, 4.0], np.float32)
    r = Ragged(np.array([1, 2, 3, 4]), (np.array([0, 2, 3]), np.array([0, 1, 1, 4])), weights)
    assert (r.num_rows, r.ragged_rank) == (2, 2)
    assert_array_equal(r.row_lengths(0), [2, 1])
    assert_array_equal(r.row_lengths(), [1, 0, 3])
    assert (r.max_length(0), r.max_length(1), r.max_length()) == (2, 3, 3)
    assert r.weights is weights
    assert nested_lists(r) == [[[1], []], [[2, 3, 4]]]


def test_single_offsets_array_and_narrow_integers_become_an_int64_level():
    r = Ragged(np.array([7.0, 8.0]), np.array([0, 0, 2], dtype=np.int32))
    assert isinstance(r.offsets, tuple)
    assert len(r.offsets) == 1
    assert r.offsets[0].dtype == np.int64
    assert r.weights is None
    assert (r.num_rows, r.max_length()) == (2, 2)


def test_empty_batch_has_no_rows_and_zero_max_length():
    r = Ragged(np.array([], dtype=np.int64), np.array([0]))
    assert (r.num_rows, r.max_length()) == (0, 0)
    assert r.to_dense().shape == (0, 0)


def test_with_values_keeps_structure_and_weights():
    weights = np.array([1.0, 2.0, 3.0], np.float32)
    r = Ragged(np.array([1, 2, 3]), np.array([0, 1, 3]), weights)
    embedded = r.with_values(np.array([0.5, 0.25, 0.125], np.float32))
    assert embedded.offsets == r.offsets
    assert embedded.weights is weights
    assert_array_equal(embedded.values, [0.5, 0.25, 0.125])
    with pytest.raises(ValueError, match="values: expected 3 values, got 2"):
        r.with_values(np.array([1, 2]))


def test_repr_shows_the_parts():
    r = Ragged(np.array([1, 2]), np.array([0, 2]), np.array([1.0, 0.5], np.float32))
    assert repr(r) == (
        "Ragged(values=array([1, 2]), offsets=(array([0, 2]),), "
        "weights=array([1. , 0.5], dtype=float32))"
    )


VALUES = np.array([1, 2, 3])
CONSTRUCTION_ERRORS = [
    ((VALUES[None], np.array([0, 3])), TypeError, "values: expected a 1-D NumPy array"),
    (([1, 2, 3], np.array([0, 3])), TypeError, "values: expected a 1-D NumPy array"),
    ((np.array(["a"]), np.array([0, 1])), TypeError, "values: expected a numeric dtype"),
    ((VALUES, ()), ValueError, "offsets: expected at least one level"),
    ((VALUES, 3), TypeError, "offsets: expected an integer NumPy array or a sequence"),
    ((VALUES, np.array([[0, 3]])), TypeError, r"offsets\[0\]: expected a 1-D integer"),
    ((VALUES, np.array([0.0, 3.0])), TypeError, r"offsets\[0\]: expected a 1-D integer"),
    ((VALUES, np.array([], dtype=np.int64)), ValueError, r"offsets\[0\]: offsets must start"),
    ((VALUES, np.array([1, 3])), ValueError, r"offsets\[0\]: offsets must start with 0"),
    ((VALUES, np.array([0, 2, 1, 3])), ValueError, r"offsets\[0\]: .* non-decreasing"),
    ((VALUES, np.array([0, 2])), ValueError, r"last offset 2 .* number of values \(3\)"),
    (
        (VALUES, (np.array([0, 3]), np.array([0, 1, 3]))),
        ValueError,
        r"offsets\[0\]: last offset 3 must equal the number of rows of offsets\[1\] \(2\)",
    ),
    (
        (VALUES, np.array([0, 3]), np.ones(3, np.float64)),
        TypeError,
        "weights: expected a 1-D float32",
    ),
    (
        (VALUES, np.array([0, 3]), np.ones(2, np.float32)),
        ValueError,
        r"weights: expected 3 weights \(one per value\), got 2",
    ),
]


@pytest.mark.parametrize(("arguments", "error", "match"), CONSTRUCTION_ERRORS)
def test_construction_rejects_inconsistent_parts(arguments, error, match):
    with pytest.raises(error, match=match):
        Ragged(*arguments)


def test_as_offsets_names_what_the_offsets_index():
    with pytest.raises(ValueError, match=r"lens: last offset 4 must equal the number of ids \(5\)"):
        as_offsets(np.array([0, 4]), 5, name="lens", items="ids")


# --- to_dense -----------------------------------------------------------------------------------


def test_to_dense_one_level_pads_with_default():
    r = Ragged(np.array([4, 5, 6]), np.array([0, 2, 2, 3]))
    dense = r.to_dense(default=-1)
    assert_array_equal(dense, [[4, 5], [-1, -1], [6, -1]])
    assert dense.ctypes.data % ALIGNMENT == 0
    assert_array_equal(r.to_dense(shape=(3, 4)), [[4, 5, 0, 0], [0, 0, 0, 0], [6, 0, 0, 0]])
    assert_array_equal(r.to_dense(shape=(-1, None)), r.to_dense())


def test_to_dense_two_levels():
    r = Ragged(np.array([1, 2, 3, 4]), (np.array([0, 2, 3]), np.array([0, 1, 1, 4])))
    expected = [[[1, 0, 0], [0, 0, 0]], [[2, 3, 4], [0, 0, 0]]]
    assert_array_equal(r.to_dense(), expected)


@pytest.mark.parametrize(
    ("shape", "match"),
    [
        ((3,), "shape: expected 2 dimensions, got 1"),
        ((2, 2), "shape: dimension 0 is 2, but there are 3 rows"),
        ((3, 1), r"shape: a row of length 2 exceeds dimension 1 \(1\)"),
    ],
)
def test_to_dense_rejects_shapes_that_do_not_fit(shape, match):
    r = Ragged(np.array([4, 5, 6]), np.array([0, 2, 2, 3]))
    with pytest.raises(ValueError, match=match):
        r.to_dense(shape=shape)


@pytest.mark.parametrize(
    "dtype", [np.bool_, np.uint8, np.int16, np.float16, ml_dtypes.bfloat16, np.float32, np.int64]
)
def test_to_dense_keeps_the_dtype_and_bits(dtype):
    values = np.array([1, 0, 1, 1, 1]).astype(dtype)
    dense = Ragged(values, np.array([0, 3, 3, 5])).to_dense(default=1)
    assert dense.dtype == np.dtype(dtype)
    assert_array_equal(dense.astype(np.float32), [[1, 0, 1], [1, 1, 1], [1, 1, 1]])


@HYPOTHESIS
@given(raggeds(max_levels=3), st.integers(0, 2), st.integers(-9, 9))
def test_to_dense_matches_loop_padding(ragged, extra, default):
    dims = [ragged.num_rows] + [ragged.max_length(lv) + extra for lv in range(ragged.ragged_rank)]
    dense = ragged.to_dense(default=default, shape=dims)
    assert dense.shape == tuple(dims)
    expected = np.array(loop_to_dense(nested_lists(ragged), dims, default), np.int64)
    assert_array_equal(dense, expected.reshape(dims))  # reshape: a list cannot say (0, 0)


@HYPOTHESIS
@given(
    st.lists(st.integers(0, 5), max_size=8), st.integers(0, 3), st.randoms(use_true_random=False)
)
def test_scatter_rows_kernel_matches_numpy_twin(lengths, extra_width, random):
    offsets = offsets_of(lengths)
    values = np.arange(offsets[-1], dtype=np.uint32) + 1
    num_slots = len(lengths) + extra_width
    row_slots = np.array(random.sample(range(num_slots), len(lengths)), dtype=np.int64)
    width = max(lengths, default=0) + extra_width
    out, expected = np.zeros((num_slots, width), np.uint32), np.zeros((num_slots, width), np.uint32)
    kernels.scatter_rows(values, offsets, row_slots, out)
    kernels.scatter_rows_reference(values, offsets, row_slots, expected)
    assert_array_equal(out, expected)


# --- from_dense ---------------------------------------------------------------------------------


def test_from_dense_strips_trailing_padding_only():
    r = Ragged.from_dense(np.array([[1, 0, 3, 0, 0], [6, 7, 8, 0, 0], [0, 0, 0, 0, 0]]))
    assert_array_equal(r.values, [1, 0, 3, 6, 7, 8])
    assert_array_equal(r.offsets[0], [0, 3, 6, 6])


def test_from_dense_with_pad_value():
    r = Ragged.from_dense(np.array([[0.5, -1.0], [-1.0, -1.0]], np.float32), pad_value=-1)
    assert r.values.dtype == np.float32
    assert_array_equal(r.values, [0.5])
    assert_array_equal(r.offsets[0], [0, 1, 1])


def test_from_dense_three_dims_strips_inner_padding_and_trailing_empty_rows():
    dense = np.array(
        [
            [[1, 2, 0], [0, 0, 0], [3, 0, 0], [0, 0, 0]],
            [[0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0]],
            [[0, 0, 0], [0, 4, 0], [0, 0, 0], [0, 0, 0]],
        ]
    )
    r = Ragged.from_dense(dense)
    assert nested_lists(r) == [[[1, 2], [], [3]], [], [[], [0, 4]]]


def test_from_dense_with_lengths_keeps_padding_inside_rows():
    dense = np.array([[[5, 0], [0, 0]], [[6, 7], [8, 0]]])
    lengths = (np.array([2, 1]), np.array([[2, 0], [1, 9]]))
    r = Ragged.from_dense(dense, lengths=lengths)
    assert nested_lists(r) == [[[5, 0], []], [[6]]]


@HYPOTHESIS
@given(raggeds(max_levels=2), st.integers(-3, 3))
def test_round_trip_through_dense_with_lengths(ragged, pad_value):
    dense = ragged.to_dense(default=pad_value)
    level_lengths = [ragged.row_lengths(0)]
    if ragged.ragged_rank == 2:
        inner = Ragged(ragged.row_lengths(1), ragged.offsets[:1]).to_dense(shape=dense.shape[:2])
        level_lengths.append(inner)
    back = Ragged.from_dense(dense, lengths=level_lengths, pad_value=pad_value)
    assert_array_equal(back.values, ragged.values)
    for got, expected in zip(back.offsets, ragged.offsets, strict=True):
        assert_array_equal(got, expected)


@HYPOTHESIS
@given(raggeds(max_levels=1, low=1))
def test_round_trip_through_dense_stripping_padding(ragged):
    back = Ragged.from_dense(ragged.to_dense())
    assert_array_equal(back.values, ragged.values)
    assert_array_equal(back.offsets[0], ragged.offsets[0])


@pytest.mark.parametrize(
    ("dense", "lengths", "error", "match"),
    [
        (np.array([1, 2]), None, TypeError, "dense: expected a NumPy array with at least 2"),
        (np.zeros((2, 3)), (np.array([1, 1]),) * 2, ValueError, "lengths: expected 1 levels"),
        (np.zeros((2, 3)), np.array([1.0, 1.0]), TypeError, r"lengths\[0\]: expected an integer"),
        (np.zeros((2, 3)), np.array([1, 1, 1]), ValueError, r"lengths\[0\]: expected shape \(2,\)"),
        (np.zeros((2, 3)), np.array([1, 4]), ValueError, r"lengths\[0\]: .* in \[0, 3\]"),
        (np.zeros((2, 3)), np.array([-1, 0]), ValueError, r"lengths\[0\]: .* in \[0, 3\]"),
    ],
)
def test_from_dense_rejects_bad_input(dense, lengths, error, match):
    with pytest.raises(error, match=match):
        Ragged.from_dense(dense, lengths=lengths)

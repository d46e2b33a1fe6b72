"""Embedding combiners: loop reference, kernels vs NumPy twins, torch autograd, input validation."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

from recis.core import segment
from recis.core.arrays import ALIGNMENT
from recis.core.kernels import segment as kernels

HYPOTHESIS = settings(max_examples=60, deadline=None)
TOLERANCE = {"rtol": 1e-5, "atol": 1e-6}


def make_batch(lengths, num_rows, dim, *, seed=0, weights="random"):
    """Random rows/index/offsets/weights; every index in range, duplicates likely."""
    rng = np.random.default_rng(seed)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    index = rng.integers(0, max(num_rows, 1), offsets[-1]).astype(np.int64)
    rows = rng.standard_normal((num_rows, dim)).astype(np.float32)
    if weights == "random":
        weights = rng.uniform(-1, 2, offsets[-1]).astype(np.float32)
    elif weights == "zeros":
        weights = np.zeros(offsets[-1], np.float32)
    return rows, index, offsets, weights


def loop_reduce(rows, index, offsets, weights, mode, tile_len=None):
    """The combiners written as plain loops over segments and ids."""
    num_segments, dim = len(offsets) - 1, rows.shape[1]
    out = np.zeros((num_segments, tile_len, dim) if mode == "tile" else (num_segments, dim))
    for b in range(num_segments):
        total = 0.0
        for position, i in enumerate(range(offsets[b], offsets[b + 1])):
            weight = 1.0 if weights is None else float(weights[i])
            total += weight
            if mode != "tile":
                out[b] += weight * rows[index[i]].astype(np.float64)
            elif position < tile_len:
                out[b, position] = weight * rows[index[i]].astype(np.float64)
        if mode == "mean":
            out[b] = out[b] / total if total != 0 else 0.0
    return out


BATCHES = {
    "ragged": ([3, 0, 5, 1, 0, 2], 7, 4),
    "all_empty": ([0, 0, 0], 0, 3),
    "no_segments": ([], 0, 2),
    "single_row": ([4], 2, 5),
    "one_unique_row": ([2, 3], 1, 3),
    "long_segments": ([40, 17, 0, 33], 25, 8),
}
MODES = [("sum", None), ("mean", None), ("tile", 1), ("tile", 3), ("tile", 50)]


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize(("mode", "tile_len"), MODES)
@pytest.mark.parametrize("weights", ["random", "zeros", None])
def test_forward_matches_loop_reference(batch, mode, tile_len, weights):
    rows, index, offsets, weights = make_batch(*BATCHES[batch], weights=weights)
    out = segment.segment_reduce(rows, index, offsets, weights, mode=mode, tile_len=tile_len)
    assert out.dtype == np.float32
    expected = loop_reduce(rows, index, offsets, weights, mode, tile_len)
    assert_allclose(out, expected, **TOLERANCE)


def test_mean_of_zero_weight_segment_is_zero_and_others_are_weighted():
    rows = np.array([[2.0, 4.0], [6.0, 8.0]], np.float32)
    index, offsets = np.array([0, 1, 0, 1]), np.array([0, 2, 4])
    weights = np.array([0.0, 0.0, 1.0, 3.0], np.float32)
    out = segment.segment_reduce(rows, index, offsets, weights, mode="mean")
    assert_array_equal(out, [[0.0, 0.0], [5.0, 7.0]])


def test_tile_scales_by_weight_truncates_and_pads():
    rows = np.array([[1.0], [10.0], [100.0]], np.float32)
    index, offsets = np.array([2, 1, 0, 0, 1]), np.array([0, 3, 5])
    weights = np.array([1.0, 2.0, 3.0, 4.0, 5.0], np.float32)
    out = segment.segment_reduce(rows, index, offsets, weights, mode="tile", tile_len=2)
    assert_array_equal(out[..., 0], [[100.0, 20.0], [4.0, 50.0]])
    out = segment.segment_reduce(rows, index, offsets, weights, mode="tile", tile_len=4)
    assert_array_equal(out[..., 0], [[100.0, 20.0, 3.0, 0.0], [4.0, 50.0, 0.0, 0.0]])


@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16, np.float64])
def test_other_row_dtypes_reduce_like_their_float32_values(dtype):
    rows, index, offsets, weights = make_batch([2, 0, 3], 4, 3)
    rows = rows.astype(dtype)
    out = segment.segment_reduce(rows, index, offsets, weights, mode="mean")
    expected = segment.segment_reduce(rows.astype(np.float32), index, offsets, weights, mode="mean")
    assert out.dtype == np.float32
    assert_array_equal(out, expected)


def test_outputs_are_aligned_and_narrow_integer_inputs_accepted():
    rows, index, offsets, weights = make_batch([2, 5, 1], 4, 16)
    out = segment.segment_reduce(rows, index.astype(np.int32), offsets.astype(np.int32), weights)
    grad = segment.segment_reduce_backward(out, index.astype(np.uint16), offsets, num_rows=4)
    assert out.ctypes.data % ALIGNMENT == 0
    assert grad.ctypes.data % ALIGNMENT == 0
    assert_allclose(out, loop_reduce(rows, index, offsets, weights, "sum"), **TOLERANCE)


# --- Backward against torch autograd ------------------------------------------------------------


def torch_reduce(rows, index, offsets, weights, mode, tile_len):
    """The same combiners built from differentiable torch ops."""
    lengths = torch.from_numpy(np.diff(offsets))
    segment_ids = torch.repeat_interleave(torch.arange(len(lengths)), lengths)
    index = torch.from_numpy(index)
    weights = torch.ones(len(index)) if weights is None else torch.from_numpy(weights)
    contributions = weights[:, None] * rows[index]
    if mode == "tile":
        positions = torch.arange(len(index)) - torch.from_numpy(offsets[:-1])[segment_ids]
        kept = positions < tile_len
        out = rows.new_zeros(len(lengths), tile_len, rows.shape[1])
        return out.index_put((segment_ids[kept], positions[kept]), contributions[kept])
    out = rows.new_zeros(len(lengths), rows.shape[1]).index_add(0, segment_ids, contributions)
    if mode == "sum":
        return out
    totals = torch.zeros(len(lengths)).index_add(0, segment_ids, weights)[:, None]
    safe_totals = torch.where(totals == 0, torch.ones_like(totals), totals)
    return torch.where(totals == 0, torch.zeros_like(out), out / safe_totals)


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize(("mode", "tile_len"), MODES)
@pytest.mark.parametrize("weights", ["random", "zeros", None])
def test_backward_matches_torch_autograd(batch, mode, tile_len, weights):
    rows, index, offsets, weights = make_batch(*BATCHES[batch], weights=weights)
    forward = segment.segment_reduce(rows, index, offsets, weights, mode=mode, tile_len=tile_len)
    grad_out = np.random.default_rng(1).standard_normal(forward.shape).astype(np.float32)
    grad_rows = segment.segment_reduce_backward(
        grad_out, index, offsets, weights, mode=mode, num_rows=len(rows), tile_len=tile_len
    )

    rows_t = torch.from_numpy(rows).requires_grad_()
    out_t = torch_reduce(rows_t, index, offsets, weights, mode, tile_len)
    out_t.backward(torch.from_numpy(grad_out))
    assert_allclose(forward, out_t.detach().numpy(), **TOLERANCE)
    assert grad_rows.dtype == np.float32
    assert_allclose(grad_rows, rows_t.grad.numpy(), **TOLERANCE)


def test_backward_sums_duplicate_ids_into_their_row():
    grad_out = np.array([[1.0, 2.0], [10.0, 20.0]], np.float32)
    index, offsets = np.array([1, 1, 1]), np.array([0, 2, 3])
    weights = np.array([1.0, 3.0, 0.5], np.float32)
    grad = segment.segment_reduce_backward(grad_out, index, offsets, weights, num_rows=3)
    assert_array_equal(grad, [[0.0, 0.0], [9.0, 18.0], [0.0, 0.0]])
    grad = segment.segment_reduce_backward(grad_out, index, offsets, weights, "mean", num_rows=3)
    assert_array_equal(grad, [[0.0, 0.0], [11.0, 22.0], [0.0, 0.0]])


# --- Kernels against their NumPy twins ----------------------------------------------------------


@st.composite
def kernel_inputs(draw):
    lengths = draw(st.lists(st.integers(0, 7), max_size=8))
    num_rows = draw(st.integers(1, 6))
    dim = draw(st.integers(0, 5))
    rows, index, offsets, _ = make_batch(lengths, num_rows, dim, seed=draw(st.integers(0, 2**32)))
    some_weights = st.sampled_from([0.0, 1.0, -0.5, 0.25, 3.0])
    weights = draw(st.lists(some_weights, min_size=len(index), max_size=len(index)))
    return rows, index, offsets, np.array(weights, np.float32)


@HYPOTHESIS
@given(kernel_inputs(), st.booleans(), st.integers(1, 4), st.integers(1, 5))
def test_kernels_match_numpy_twins(inputs, normalize, tile_len, num_parts):
    rows, index, offsets, weights = inputs
    num_segments, num_rows, dim = len(offsets) - 1, len(rows), rows.shape[1]
    rng = np.random.default_rng(len(index))
    grad_pool = rng.standard_normal((num_segments, dim)).astype(np.float32)
    grad_tile = rng.standard_normal((num_segments, tile_len, dim)).astype(np.float32)
    cases = [
        ("segment_pool", (num_segments, dim), (rows, index, offsets, weights, normalize)),
        ("segment_tile", (num_segments, tile_len, dim), (rows, index, offsets, weights)),
        (
            "segment_pool_backward",
            (num_rows, dim),
            (grad_pool, index, offsets, weights, normalize, num_parts),
        ),
        ("segment_tile_backward", (num_rows, dim), (grad_tile, index, offsets, weights, num_parts)),
    ]
    for name, shape, arguments in cases:
        out, expected = np.full(shape, np.nan, np.float32), np.full(shape, np.nan, np.float32)
        getattr(kernels, name)(*arguments, out)
        getattr(kernels, f"{name}_reference")(*arguments, expected)
        assert_array_equal(out, expected, err_msg=name)


def test_backward_kernel_result_does_not_depend_on_the_number_of_parts():
    rows, index, offsets, weights = make_batch([30, 0, 41, 7, 12], 9, 6)
    grad_out = np.random.default_rng(2).standard_normal((5, 6)).astype(np.float32)
    results = []
    for num_parts in (1, 2, 3, 9):
        grad_rows = np.empty_like(rows)
        kernels.segment_pool_backward(grad_out, index, offsets, weights, True, num_parts, grad_rows)
        results.append(grad_rows)
    for grad_rows in results[1:]:
        assert_array_equal(grad_rows, results[0])


# --- Validation ---------------------------------------------------------------------------------

ROWS, INDEX, OFFSETS, WEIGHTS = make_batch([2, 1], 3, 2)

FORWARD_ERRORS = [
    ({"rows": ROWS[0]}, TypeError, "rows: expected a 2-D"),
    ({"rows": ROWS.astype(np.int32)}, TypeError, "rows: expected float16"),
    ({"index": INDEX.astype(np.float32)}, TypeError, "index: expected a 1-D integer"),
    ({"index": np.array([0, -1, 2])}, ValueError, r"index: entries must lie in \[0, 3\)"),
    ({"index": np.array([0, 3, 2])}, ValueError, r"index: entries must lie in \[0, 3\)"),
    ({"offsets": np.array([1, 2, 3])}, ValueError, "offsets: offsets must start with 0"),
    ({"offsets": np.array([0, 3, 2, 3])}, ValueError, "offsets: offsets must be non-decreasing"),
    ({"offsets": np.array([0, 2])}, ValueError, r"offsets: last offset 2 .* ids in index \(3\)"),
    ({"offsets": OFFSETS[None]}, TypeError, "offsets: expected a 1-D integer"),
    ({"weights": WEIGHTS.astype(np.float64)}, TypeError, "weights: expected a 1-D float32"),
    ({"weights": WEIGHTS[:2]}, ValueError, r"weights: expected 3 weights"),
    ({"mode": "max"}, ValueError, "mode: expected one of"),
    ({"mode": "tile"}, ValueError, "tile_len: mode='tile' needs a positive integer"),
    ({"mode": "tile", "tile_len": 0}, ValueError, "tile_len: mode='tile' needs a positive"),
    ({"tile_len": 2}, ValueError, "tile_len: only applies to mode='tile'"),
]


@pytest.mark.parametrize(("change", "error", "match"), FORWARD_ERRORS)
def test_forward_rejects_bad_input_naming_the_argument(change, error, match):
    arguments = {"rows": ROWS, "index": INDEX, "offsets": OFFSETS, "weights": WEIGHTS} | change
    with pytest.raises(error, match=match):
        segment.segment_reduce(**arguments)


BACKWARD_ERRORS = [
    ({"grad_out": np.zeros((3, 2), np.float32)}, ValueError, "grad_out: expected shape"),
    ({"grad_out": np.zeros(2, np.float32)}, ValueError, "grad_out: expected shape"),
    ({"grad_out": np.zeros((2, 2), np.int64)}, TypeError, "grad_out: expected float16"),
    ({"mode": "tile", "tile_len": 2}, ValueError, "grad_out: expected shape"),
    ({"num_rows": -1}, ValueError, "num_rows: expected a non-negative integer"),
    ({"num_rows": 2}, ValueError, r"index: entries must lie in \[0, 2\)"),
]


@pytest.mark.parametrize(("change", "error", "match"), BACKWARD_ERRORS)
def test_backward_rejects_bad_input_naming_the_argument(change, error, match):
    arguments = {
        "grad_out": np.ones((2, 2), np.float32),
        "index": INDEX,
        "offsets": OFFSETS,
        "weights": WEIGHTS,
        "num_rows": 3,
    } | change
    with pytest.raises(error, match=match):
        segment.segment_reduce_backward(**arguments)

"""Embedding combiners on the GPU: CUDA forward and backward against the CPU kernels."""

from __future__ import annotations

import numpy as np
import pytest

from recis.core import segment

CLOSE = {"rtol": 1e-6, "atol": 1e-6}
MODES = [("sum", None), ("mean", None), ("tile", 1), ("tile", 4), ("tile", 40)]
DTYPES = [np.float32, np.float16, np.float64]
WEIGHTS = ["none", "random", "zeros"]


def make_batch(lengths, num_rows, dim, dtype=np.float32, weights="random", seed=0):
    """Rows, index (duplicates likely), offsets (empty segments included) and weights."""
    rng = np.random.default_rng(seed)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    index = rng.integers(0, num_rows, offsets[-1]).astype(np.int64)
    rows = (rng.standard_normal((num_rows, dim)) * 3).astype(dtype)
    chosen = {
        "none": None,
        "random": rng.uniform(-1, 2, offsets[-1]).astype(np.float32),
        "zeros": np.zeros(offsets[-1], np.float32),
    }
    return rows, index, offsets, chosen[weights]


def on_gpu(cp, *arrays):
    return [None if a is None else cp.asarray(a) for a in arrays]


def ragged_lengths(seed: int, count: int = 60, longest: int = 50) -> np.ndarray:
    lengths = np.random.default_rng(seed).integers(0, longest, count)
    lengths[::7] = 0  # empty segments
    return lengths


@pytest.mark.gpu
@pytest.mark.parametrize(("mode", "tile_len"), MODES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weights", WEIGHTS)
@pytest.mark.parametrize("dim", [1, 5, 32, 70])
def test_forward_equals_the_cpu(cp, mode, tile_len, dtype, weights, dim):
    batch = make_batch(ragged_lengths(dim), 40, dim, dtype, weights, seed=dim)
    expected = segment.segment_reduce(*batch, mode=mode, tile_len=tile_len)
    got = segment.segment_reduce(*on_gpu(cp, *batch), mode=mode, tile_len=tile_len)
    assert isinstance(got, cp.ndarray) and got.dtype == np.float32
    np.testing.assert_allclose(cp.asnumpy(got), expected, **CLOSE)


@pytest.mark.gpu
@pytest.mark.parametrize(("mode", "tile_len"), MODES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weights", WEIGHTS)
@pytest.mark.parametrize("dim", [1, 5, 32, 70])
def test_backward_equals_the_cpu(cp, mode, tile_len, dtype, weights, dim):
    _, index, offsets, w = make_batch(ragged_lengths(dim + 1), 40, dim, weights=weights, seed=dim)
    leading = (offsets.size - 1,) if tile_len is None else (offsets.size - 1, tile_len)
    grad = np.random.default_rng(dim).standard_normal((*leading, dim)).astype(dtype)
    kwargs = {"mode": mode, "num_rows": 45, "tile_len": tile_len}  # rows 40..44 get no gradient
    expected = segment.segment_reduce_backward(grad, index, offsets, w, **kwargs)
    got = segment.segment_reduce_backward(*on_gpu(cp, grad, index, offsets, w), **kwargs)
    assert isinstance(got, cp.ndarray) and got.shape == (45, dim)
    np.testing.assert_allclose(cp.asnumpy(got), expected, **CLOSE)


@pytest.mark.gpu
@pytest.mark.parametrize(("mode", "tile_len"), [("sum", None), ("mean", None), ("tile", 8)])
def test_a_million_ids_full_of_duplicates(cp, mode, tile_len):
    lengths = np.random.default_rng(5).integers(0, 40, 50_000)
    rows, index, offsets, weights = make_batch(lengths, 3000, 16, seed=5)
    assert index.size > 900_000
    expected = segment.segment_reduce(rows, index, offsets, weights, mode, tile_len)
    got = segment.segment_reduce(*on_gpu(cp, rows, index, offsets, weights), mode, tile_len)
    np.testing.assert_allclose(cp.asnumpy(got), expected, **CLOSE)
    grad = np.random.default_rng(6).standard_normal(expected.shape).astype(np.float32)
    kwargs = {"mode": mode, "num_rows": 3000, "tile_len": tile_len}
    expected = segment.segment_reduce_backward(grad, index, offsets, weights, **kwargs)
    got = segment.segment_reduce_backward(*on_gpu(cp, grad, index, offsets, weights), **kwargs)
    np.testing.assert_allclose(cp.asnumpy(got), expected, **CLOSE)


@pytest.mark.gpu
def test_one_hot_row_takes_every_id_in_id_order(cp):
    index = np.zeros(200_000, np.int64)
    offsets = np.arange(0, 200_001, 4, dtype=np.int64)
    weights = np.random.default_rng(7).uniform(-1, 1, index.size).astype(np.float32)
    grad = np.random.default_rng(8).standard_normal((offsets.size - 1, 3)).astype(np.float32)
    expected = segment.segment_reduce_backward(grad, index, offsets, weights, num_rows=1)
    got = segment.segment_reduce_backward(*on_gpu(cp, grad, index, offsets, weights), num_rows=1)
    np.testing.assert_allclose(cp.asnumpy(got), expected, **CLOSE)


@pytest.mark.gpu
def test_no_segments_no_ids_and_no_rows(cp):
    rows, index, offsets, _ = on_gpu(
        cp, np.ones((0, 3), np.float32), np.empty(0, np.int64), np.zeros(4, np.int64), None
    )
    assert (
        cp.asnumpy(segment.segment_reduce(rows, index, offsets, mode="mean")).tolist()
        == [[0.0] * 3] * 3
    )
    tiled = segment.segment_reduce(rows, index, offsets, mode="tile", tile_len=2)
    assert cp.asnumpy(tiled).shape == (3, 2, 3) and not cp.asnumpy(tiled).any()
    grad = cp.ones((3, 3), np.float32)
    assert segment.segment_reduce_backward(grad, index, offsets, num_rows=0).shape == (0, 3)


@pytest.mark.gpu
def test_unchecked_index_reads_nan_forward_and_is_dropped_backward(cp):
    rows = cp.ones((2, 2), np.float32)
    index, offsets = cp.asarray([0, 5, 1]), cp.asarray([0, 2, 3])
    out = cp.asnumpy(segment.segment_reduce(rows, index, offsets))
    assert np.isnan(out[0]).all() and out[1].tolist() == [1.0, 1.0]
    grad = segment.segment_reduce_backward(cp.ones((2, 2), np.float32), index, offsets, num_rows=2)
    assert cp.asnumpy(grad).tolist() == [[1.0, 1.0], [1.0, 1.0]]

"""The GPU feature ops, run on the CPU: ``cuda/features.cu`` compiled as plain C++ (each kernel a
loop over its items, last to first) behind the Python side of :mod:`recis.core.cuda.features`,
against the CPU feature ops. Every launch is checked against the kernel's C signature: argument
count, ``n`` first, int64 scalars where the kernel takes ``long long`` and arrays where it takes
pointers. The GPU itself is tested in ``tests/gpu``."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from host_cuda import build_for_host
from ragged_data import random_ids, random_ragged, random_sequences

from recis.core import features as cpu
from recis.core.cuda import features as gpu
from recis.core.features.bucketize import compared_boundaries
from recis.core.features.multi_hash import MAX_HASHES, multi_hash_parameters
from recis.core.kernels.feature_ops import modulo_magic
from recis.core.ragged import Ragged
from recis.core.string_hash import hash_strings

SEEDS = range(6)


@pytest.fixture
def on_host(monkeypatch):
    """Route recis.core.cuda.features to the host build of features.cu, NumPy standing in for
    CuPy."""
    kernels = build_for_host("features.cu")
    device = SimpleNamespace(
        empty=np.empty,
        zeros=np.zeros,
        asarray=np.array,  # a copy, as an upload is
        asnumpy=np.asarray,
        cumsum=np.cumsum,
    )
    monkeypatch.setattr(gpu, "_xp", lambda: device)
    monkeypatch.setattr(gpu, "_kernel", lambda name: name)
    monkeypatch.setattr(gpu, "_launch", kernels.launch)
    monkeypatch.setattr(gpu, "_address", lambda array: array.ctypes.data)


@pytest.mark.parametrize("seed", SEEDS)
def test_mod_matches_the_cpu(on_host, seed):
    rng = np.random.default_rng(seed)
    divisors = [1, 10, 2**63 + 5, 2**64 - 1, int(rng.integers(2, 2**62))][: 1 + seed % 5]
    columns = [random_ids(rng, int(rng.integers(0, 40))) for _ in divisors]
    magic = [modulo_magic(d) if d > 1 else (0, 0) for d in divisors]
    out = [np.full(len(c), 7, np.uint64) for c in columns]
    gpu.fused_mod(
        [c.view(np.uint64) for c in columns],
        *(np.array(p, np.uint64) for p in (divisors, [m for m, _ in magic], [s for _, s in magic])),
        out,
    )
    for got, want in zip(out, cpu.fused_mod(columns, divisors), strict=True):
        np.testing.assert_array_equal(got.view(np.int64), want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
@pytest.mark.parametrize("seed", SEEDS[:3])
def test_bucketize_matches_the_cpu(on_host, seed, dtype):
    rng = np.random.default_rng(seed)
    edges = [np.sort(rng.standard_normal(k) * 5) for k in (0, 1, 7, 30)]
    columns = [(rng.standard_normal(int(rng.integers(0, 50))) * 6).astype(dtype) for _ in edges]
    if dtype != np.int64:
        columns[2][:2] = [np.nan, edges[2][3]]
    compared = [compared_boundaries(e, np.dtype(dtype)) for e in edges]
    out = [np.full(len(c), -1, np.int64) for c in columns]
    gpu.fused_bucketize(columns, compared, out)
    for got, want in zip(out, cpu.fused_bucketize(columns, edges), strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("seed", SEEDS)
def test_multi_hash_matches_the_cpu(on_host, seed):
    rng = np.random.default_rng(seed)
    buckets = [[1000], [10, 20], [7, 5, 3], [2**40, 3, 99, 1]]
    columns = [random_ids(rng, int(rng.integers(0, 30))) for _ in buckets]
    padded = np.ones((3, len(buckets), MAX_HASHES), np.int64)
    for f, params in enumerate(multi_hash_parameters(b) for b in buckets):
        for j, row in enumerate(params):
            padded[j, f, : len(row)] = row
    out = [np.full((len(b), len(c)), -1, np.int64) for b, c in zip(buckets, columns, strict=True)]
    gpu.fused_multi_hash(columns, *padded, out)
    for got, want in zip(out, cpu.fused_id_multi_hash(columns, buckets), strict=True):
        np.testing.assert_array_equal(got, np.stack(want))


@pytest.mark.parametrize("hash_type", ["farm", "murmur"])
def test_string_hashes_match_the_cpu_for_every_length(on_host, hash_type):
    rng = np.random.default_rng(3)
    columns = []
    for lengths in (np.arange(0, 140), rng.integers(0, 300, 20), np.array([], np.int64)):
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        columns.append((rng.integers(0, 256, int(offsets[-1]), dtype=np.uint8), offsets))
    out = [np.zeros(len(o) - 1, np.uint64) for _, o in columns]
    gpu.fused_hash_strings([d for d, _ in columns], [o for _, o in columns], hash_type, out)
    for (data, offsets), got in zip(columns, out, strict=True):
        np.testing.assert_array_equal(got.view(np.int64), hash_strings(data, offsets, hash_type))


def device_side(ragged: Ragged) -> tuple:
    return ragged.values, ragged.offsets[-1], ragged.weights


@pytest.mark.parametrize("seed", SEEDS)
def test_feature_cross_matches_the_cpu(on_host, seed):
    rng = np.random.default_rng(seed)
    pairs = []
    for rows, longest in ((5, 3), (0, 2), (40, 8), (3, 90)):
        x = random_ragged(rng, rows, longest, weights=bool(rng.integers(2)))
        y = random_ragged(rng, rows, longest, weights=bool(rng.integers(2)))
        pairs.append((x, y))
    got = gpu.fused_feature_cross([(device_side(x), device_side(y)) for x, y in pairs])
    for (hashes, offsets, weights), want in zip(got, cpu.fused_feature_cross(pairs), strict=True):
        np.testing.assert_array_equal(hashes, want.values)
        np.testing.assert_array_equal(offsets, want.offsets[-1])
        np.testing.assert_array_equal(weights, want.weights)


def test_feature_cross_of_a_row_of_repeats_sums_weights_in_order(on_host):
    x = Ragged(np.array([5, 5, 7, 5]), np.array([0, 4]), np.array([0.1, 0.2, 1, 0.3], np.float32))
    y = Ragged(np.array([1, 2]), np.array([0, 2]))
    [(hashes, offsets, weights)] = gpu.fused_feature_cross([(device_side(x), device_side(y))])
    want = cpu.feature_cross(x, y)
    np.testing.assert_array_equal(hashes, want.values)
    assert offsets.tolist() == [0, 4] and weights.tolist() == want.weights.tolist()
    assert weights[0] == np.float32(np.float32(np.float32(0.1) + np.float32(0.2)) + np.float32(0.3))


@pytest.mark.parametrize("size", [1, 2, 4, 8])
@pytest.mark.parametrize("seed", SEEDS[:3])
def test_row_truncation_matches_the_cpu(on_host, seed, size):
    rng = np.random.default_rng(seed)
    dtype = np.dtype(f"u{size}")
    columns = [
        random_ragged(rng, rows, longest, bool(rng.integers(2)), dtype)
        for rows, longest in ((6, 5), (0, 3), (50, 12), (4, 1))
    ]
    seq_lens, sides = [3, 2, 5, 1], ["left", "right", "right", "left"]
    got = gpu.fused_truncate_rows(
        [device_side(c) for c in columns], seq_lens, [s == "left" for s in sides]
    )
    want = cpu.fused_sequence_truncate(columns, seq_lens, sides, [2] * 4, [False] * 4)
    for (values, offsets, weights, drops, pads), w in zip(got, want, strict=True):
        np.testing.assert_array_equal(values, w.ragged.values)
        np.testing.assert_array_equal(offsets, w.ragged.offsets[0])
        assert (weights is None) == (w.ragged.weights is None)
        if weights is not None:
            np.testing.assert_array_equal(weights, w.ragged.weights)
        np.testing.assert_array_equal(drops, w.drop_nums)
        np.testing.assert_array_equal(pads, w.pad_nums)


@pytest.mark.parametrize("size", [1, 2, 4, 8])
@pytest.mark.parametrize("seed", SEEDS[:3])
def test_sequence_truncation_matches_the_cpu(on_host, seed, size):
    rng = np.random.default_rng(seed)
    dtype = np.dtype(f"u{size}")
    columns = [
        random_sequences(rng, rows, longest, bool(rng.integers(2)), dtype)
        for rows, longest in ((6, 5), (0, 3), (30, 9), (3, 1))
    ]
    seq_lens, sides = [3, 2, 4, 2], ["left", "right", "left", "right"]
    got = gpu.fused_truncate_sequences(
        [(c.values, *c.offsets, c.weights) for c in columns],
        seq_lens,
        [s == "left" for s in sides],
    )
    want = cpu.fused_sequence_truncate(columns, seq_lens, sides, [3] * 4, [False] * 4)
    for (values, inner, weights, drops, pads), w in zip(got, want, strict=True):
        np.testing.assert_array_equal(values, w.ragged.values)
        np.testing.assert_array_equal(inner, w.ragged.offsets[1])
        assert (weights is None) == (w.ragged.weights is None)
        if weights is not None:
            np.testing.assert_array_equal(weights, w.ragged.weights)
        np.testing.assert_array_equal(drops, w.drop_nums)
        np.testing.assert_array_equal(pads, w.pad_nums)


def test_values_of_another_dtype_than_the_kernel_reads_are_refused(on_host):
    with pytest.raises(TypeError, match="values: expected contiguous uint64 arrays, got int64"):
        gpu.fused_mod([np.arange(3)], *(np.ones(1, np.uint64),) * 3, [np.empty(3, np.uint64)])

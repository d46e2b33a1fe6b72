"""The GPU feature ops against the CPU ones: bitwise equal results, on CuPy arrays (the kernels,
then the engine's fused functions) and on CUDA tensors (the torch front end, on the caller's
stream)."""

from __future__ import annotations

import numpy as np
import pytest
from ragged_data import random_ids, random_ragged, random_sequences

from recis.core import features as engine
from recis.core.cuda import features as gpu_kernels
from recis.core.features.bucketize import compared_boundaries
from recis.core.features.multi_hash import MAX_HASHES, multi_hash_parameters
from recis.core.kernels.feature_ops import modulo_magic
from recis.core.ragged import Ragged
from recis.core.string_hash import hash_strings

pytestmark = pytest.mark.gpu


def assert_same(cp, gpu_array, cpu_array) -> None:
    assert isinstance(gpu_array, cp.ndarray)
    np.testing.assert_array_equal(cp.asnumpy(gpu_array), cpu_array)


@pytest.fixture
def ragged_on_gpu(cp):
    """``to_gpu(ragged)``: a copy of an engine Ragged holding CuPy arrays."""
    try:
        Ragged(cp.arange(2), cp.asarray(np.array([0, 2])))
    except TypeError as error:
        pytest.skip(f"recis.core.ragged.Ragged does not hold CuPy arrays yet ({error})")

    def to_gpu(ragged: Ragged) -> Ragged:
        weights = None if ragged.weights is None else cp.asarray(ragged.weights)
        offsets = tuple(cp.asarray(o) for o in ragged.offsets)
        return Ragged(cp.asarray(ragged.values), offsets, weights)

    return to_gpu


def assert_same_ragged(cp, gpu_ragged: Ragged, cpu_ragged: Ragged) -> None:
    assert_same(cp, gpu_ragged.values, cpu_ragged.values)
    assert len(gpu_ragged.offsets) == len(cpu_ragged.offsets)
    for gpu_offsets, cpu_offsets in zip(gpu_ragged.offsets, cpu_ragged.offsets, strict=True):
        assert_same(cp, gpu_offsets, cpu_offsets)
    assert (gpu_ragged.weights is None) == (cpu_ragged.weights is None)
    if cpu_ragged.weights is not None:
        assert_same(cp, gpu_ragged.weights, cpu_ragged.weights)


# --- the kernels (recis.core.cuda.features) --------------------------------------------------


def test_mod_kernel_matches_the_cpu_over_a_grid_of_many_strides(cp):
    rng = np.random.default_rng(0)
    divisors = [1, 10, 1_000_003, 2**63 + 5, 2**64 - 1]
    columns = [random_ids(rng, n) for n in (5, 0, 3_000_000, 77, 1000)]
    magic = [modulo_magic(d) if d > 1 else (0, 0) for d in divisors]
    params = [
        np.array(p, np.uint64) for p in (divisors, [m for m, _ in magic], [s for _, s in magic])
    ]
    out = [cp.empty(len(c), cp.uint64) for c in columns]
    gpu_kernels.fused_mod([cp.asarray(c).view(cp.uint64) for c in columns], *params, out)
    for got, want in zip(out, engine.fused_mod(columns, divisors), strict=True):
        assert_same(cp, got.view(cp.int64), want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_bucketize_kernel_matches_the_cpu(cp, dtype):
    rng = np.random.default_rng(1)
    edges = [np.sort(rng.standard_normal(k) * 5) for k in (0, 1, 9, 300)]
    columns = [(rng.standard_normal(n) * 6).astype(dtype) for n in (10, 0, 5000, 100_000)]
    if dtype != np.int64:
        columns[2][:3] = [np.nan, edges[2][4], -np.inf]
    compared = [compared_boundaries(e, np.dtype(dtype)) for e in edges]
    out = [cp.empty(len(c), cp.int64) for c in columns]
    gpu_kernels.fused_bucketize([cp.asarray(c) for c in columns], compared, out)
    for got, want in zip(out, engine.fused_bucketize(columns, edges), strict=True):
        assert_same(cp, got, want)


def test_multi_hash_kernel_matches_the_cpu(cp):
    rng = np.random.default_rng(2)
    buckets = [[1000], [10, 20], [7, 5, 3], [2**40, 3, 99, 1]]
    columns = [random_ids(rng, n) for n in (50, 0, 20_000, 300)]
    padded = np.ones((3, len(buckets), MAX_HASHES), np.int64)
    for f, params in enumerate(multi_hash_parameters(b) for b in buckets):
        for j, row in enumerate(params):
            padded[j, f, : len(row)] = row
    out = [cp.empty((len(b), len(c)), cp.int64) for b, c in zip(buckets, columns, strict=True)]
    gpu_kernels.fused_multi_hash([cp.asarray(c) for c in columns], *padded, out)
    for got, want in zip(out, engine.fused_id_multi_hash(columns, buckets), strict=True):
        assert_same(cp, got, np.stack(want))


@pytest.mark.parametrize("hash_type", ["farm", "murmur"])
def test_string_hash_kernels_match_the_cpu_for_every_length(cp, hash_type):
    rng = np.random.default_rng(3)
    columns = []
    for lengths in (np.arange(0, 200), rng.integers(0, 40, 50_000), np.zeros(0, np.int64)):
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        columns.append((rng.integers(0, 256, int(offsets[-1]), dtype=np.uint8), offsets))
    out = [cp.empty(len(o) - 1, cp.uint64) for _, o in columns]
    gpu_kernels.fused_hash_strings(
        [cp.asarray(d) for d, _ in columns], [cp.asarray(o) for _, o in columns], hash_type, out
    )
    for (data, offsets), got in zip(columns, out, strict=True):
        assert_same(cp, got.view(cp.int64), hash_strings(data, offsets, hash_type))


def cross_pairs(rng) -> list[tuple[Ragged, Ragged]]:
    pairs = []
    for index, (rows, longest) in enumerate(((5, 3), (0, 2), (20_000, 6), (7, 300))):
        x = random_ragged(rng, rows, longest, weights=index % 2 == 0)
        y = random_ragged(rng, rows, longest, weights=index != 1)
        pairs.append((x, y))
    return pairs


def test_feature_cross_kernels_match_the_cpu(cp):
    pairs = cross_pairs(np.random.default_rng(4))

    def side(r: Ragged):
        weights = None if r.weights is None else cp.asarray(r.weights)
        return cp.asarray(r.values), cp.asarray(r.offsets[-1]), weights

    got = gpu_kernels.fused_feature_cross([(side(x), side(y)) for x, y in pairs])
    for (hashes, offsets, weights), want in zip(
        got, engine.fused_feature_cross(pairs), strict=True
    ):
        assert_same(cp, hashes, want.values)
        assert_same(cp, offsets, want.offsets[-1])
        assert_same(cp, weights, want.weights)


@pytest.mark.parametrize("dtype", [np.int8, np.float16, np.float32, np.int64])
def test_row_truncation_kernels_match_the_cpu(cp, dtype):
    rng = np.random.default_rng(5)
    columns = [
        random_ragged(rng, rows, longest, weights, dtype)
        for rows, longest, weights in (
            (6, 5, True),
            (0, 3, False),
            (30_000, 40, False),
            (4, 1, True),
        )
    ]
    seq_lens, sides = [3, 2, 16, 1], ["left", "right", "right", "left"]
    bits = np.dtype(f"u{np.dtype(dtype).itemsize}")
    got = gpu_kernels.fused_truncate_rows(
        [
            (cp.asarray(c.values.view(bits)), cp.asarray(c.offsets[0]), _weights(cp, c))
            for c in columns
        ],
        seq_lens,
        [side == "left" for side in sides],
    )
    want = engine.fused_sequence_truncate(columns, seq_lens, sides, [2] * 4, [False] * 4)
    for (values, offsets, weights, drops, pads), w in zip(got, want, strict=True):
        assert_same(cp, values, w.ragged.values.view(bits))
        assert_same(cp, offsets, w.ragged.offsets[0])
        assert (weights is None) == (w.ragged.weights is None)
        if weights is not None:
            assert_same(cp, weights, w.ragged.weights)
        assert_same(cp, drops, w.drop_nums)
        assert_same(cp, pads, w.pad_nums)


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32, np.int64])
def test_sequence_truncation_kernels_match_the_cpu(cp, dtype):
    rng = np.random.default_rng(6)
    columns = [
        random_sequences(rng, rows, longest, weights, dtype)
        for rows, longest, weights in ((6, 5, True), (0, 3, False), (5000, 30, True), (3, 1, False))
    ]
    seq_lens, sides = [3, 2, 8, 2], ["left", "right", "left", "right"]
    bits = np.dtype(f"u{np.dtype(dtype).itemsize}")
    got = gpu_kernels.fused_truncate_sequences(
        [
            (cp.asarray(c.values.view(bits)), *(cp.asarray(o) for o in c.offsets), _weights(cp, c))
            for c in columns
        ],
        seq_lens,
        [side == "left" for side in sides],
    )
    want = engine.fused_sequence_truncate(columns, seq_lens, sides, [3] * 4, [False] * 4)
    for (values, inner, weights, drops, pads), w in zip(got, want, strict=True):
        assert_same(cp, values, w.ragged.values.view(bits))
        assert_same(cp, inner, w.ragged.offsets[1])
        assert (weights is None) == (w.ragged.weights is None)
        if weights is not None:
            assert_same(cp, weights, w.ragged.weights)
        assert_same(cp, drops, w.drop_nums)
        assert_same(cp, pads, w.pad_nums)


def _weights(cp, ragged: Ragged):
    return None if ragged.weights is None else cp.asarray(ragged.weights)


# --- the engine's fused functions on CuPy columns --------------------------------------------


def test_value_ops_on_dense_cupy_columns_stay_on_the_gpu(cp):
    rng = np.random.default_rng(7)
    ids = random_ids(rng, 10_000).reshape(100, 100)
    prices = rng.standard_normal((50, 3)).astype(np.float32)
    mods = engine.fused_mod([cp.asarray(ids), ids], [97, 97])
    assert_same(cp, mods[0], mods[1])
    assert mods[0].shape == (100, 100)
    edges = [-1, 0, 0.5]
    assert_same(cp, engine.bucketize(cp.asarray(prices), edges), engine.bucketize(prices, edges))
    hashed = engine.id_multi_hash(cp.asarray(ids), [1000, 10])
    for got, want in zip(hashed, engine.id_multi_hash(ids, [1000, 10]), strict=True):
        assert_same(cp, got, want)


def test_fused_ops_on_cupy_raggeds_match_the_cpu(cp, ragged_on_gpu):
    rng = np.random.default_rng(8)
    pairs = cross_pairs(rng)
    crossed = engine.fused_feature_cross([(ragged_on_gpu(x), ragged_on_gpu(y)) for x, y in pairs])
    for got, want in zip(crossed, engine.fused_feature_cross(pairs), strict=True):
        assert_same_ragged(cp, got, want)
    sequences = random_sequences(rng, 100, 12, True, np.int64)
    rows = random_ragged(rng, 200, 30, weights=False)
    args = ([8, 5], ["left", "right"], [3, 2], [False, False])
    got = engine.fused_sequence_truncate([ragged_on_gpu(sequences), ragged_on_gpu(rows)], *args)
    for g, w in zip(got, engine.fused_sequence_truncate([sequences, rows], *args), strict=True):
        assert_same_ragged(cp, g.ragged, w.ragged)
        assert_same(cp, g.drop_nums, w.drop_nums)
        assert_same(cp, g.pad_nums, w.pad_nums)
    assert_same_ragged(cp, engine.mod(ragged_on_gpu(rows), 7), engine.mod(rows, 7))


def test_hash_column_on_cupy_strings_matches_the_cpu(cp, ragged_on_gpu):
    strings = Ragged(
        np.frombuffer(b"applebananacherry", np.uint8).copy(),
        (np.array([0, 2, 3]), np.array([0, 5, 11, 17])),
    )
    for hash_type in ("farm", "murmur"):
        got = engine.hash_column(ragged_on_gpu(strings), hash_type)
        assert_same_ragged(cp, got, engine.hash_column(strings, hash_type))


# --- the torch front end on CUDA tensors ------------------------------------------------------


def test_feature_engine_on_cuda_tensors_matches_the_cpu_on_a_side_stream(cp, ragged_on_gpu):
    torch = pytest.importorskip("torch", reason="the torch front end needs torch")
    if not torch.cuda.is_available():
        pytest.skip("the torch front end on CUDA tensors needs a CUDA build of torch")
    from recis.backends.torch.features.feature import Feature
    from recis.backends.torch.ragged import RaggedTensor
    from recis.features import (
        Bucketize,
        FeatureCross,
        FeatureEngine,
        Mod,
        SelectField,
        SelectFields,
        SequenceTruncate,
    )

    rng = np.random.default_rng(9)
    x, y = random_ragged(rng, 1000, 6, True), random_ragged(rng, 1000, 6, False)
    price = torch.from_numpy(rng.standard_normal(1000).astype(np.float32))

    def batch(device):
        def ragged(r):
            weight = None if r.weights is None else torch.from_numpy(r.weights)
            offsets = [torch.from_numpy(r.offsets[0])]
            return RaggedTensor(torch.from_numpy(r.values), offsets, weight).to(device)

        return {"x": ragged(x), "y": ragged(y), "price": price.to(device)}

    def features():
        cross = SelectFields([SelectField("x"), SelectField("y")])
        return FeatureEngine(
            [
                Feature("x_mod").add_op(SelectField("x")).add_op(Mod(1000)),
                Feature("x_seq").add_op(SelectField("x")).add_op(SequenceTruncate(3, False)),
                Feature("cross").add_op(cross).add_op(FeatureCross()).add_op(Mod(977)),
                Feature("price").add_op(SelectField("price")).add_op(Bucketize([-1, 0, 1])),
            ]
        )

    want = features()(batch("cpu"))
    inputs = batch("cuda")
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        got = features()(inputs)
    torch.cuda.current_stream().wait_stream(stream)
    for name in ("x_mod", "x_seq", "cross"):
        assert got[name].values().is_cuda
        assert torch.equal(got[name].values().cpu(), want[name].values()), name
        assert torch.equal(got[name].offsets()[-1].cpu(), want[name].offsets()[-1]), name
    assert torch.equal(got["cross"].weight().cpu(), want["cross"].weight())
    assert torch.equal(got["x_seq"].pad_info.drop_nums.cpu(), want["x_seq"].pad_info.drop_nums)
    assert got["price"].is_cuda and torch.equal(got["price"].cpu(), want["price"])

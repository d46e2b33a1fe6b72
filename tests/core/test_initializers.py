"""Deterministic per-id initializers: generator spec, kernels vs twins, invariances, statistics."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

from recis.core import initializers as inits
from recis.core.kernels import random as kernels

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
EXTREME_IDS = np.array([INT64_MIN, -1, 0, 1, INT64_MAX], dtype=np.int64)
MASK64 = 2**64 - 1
HYPOTHESIS = settings(max_examples=50, deadline=None)

uint64s = st.integers(0, MASK64)
int64_lists = st.lists(st.integers(INT64_MIN, INT64_MAX), max_size=20)
finite = st.floats(-1e3, 1e3, allow_nan=False)

ALL_INITIALIZERS = [
    inits.ConstantInitializer(0.25),
    inits.UniformInitializer(-0.5, 2.0),
    inits.NormalInitializer(0.1, 0.3),
    inits.TruncNormalInitializer(0.0, 1.0, -1.0, 1.5),
    inits.XavierUniformInitializer(gain=2.0, fan_rows=100),
    inits.XavierNormalInitializer(gain=0.5),
    inits.KaimingUniformInitializer(a=0.2, mode="fan_out", nonlinearity="leaky_relu"),
    inits.KaimingNormalInitializer(nonlinearity="tanh"),
]
RANDOM_INITIALIZERS = ALL_INITIALIZERS[1:]


# --- The module docstring's spec, written out with Python integers ------------------------------


def _one_table(seed, table_hash):
    """Kernel arguments (streams, tags, tag_stride) for ids all of one table."""
    return np.array([kernels.stream_reference(seed, table_hash)]), np.zeros(1, np.int64), 0


def spec_mix64(x: int) -> int:
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)


def spec_bits(seed: int, table_hash: int, id_: int, element: int, attempt: int, lane: int) -> int:
    key = spec_mix64(spec_mix64(seed ^ table_hash) ^ (id_ & MASK64))
    counter = (attempt << 33) | (element << 1) | lane
    return spec_mix64((key + (counter + 1) * 0x9E3779B97F4A7C15) & MASK64)


F32 = np.float32
SPEC = kernels.constants()


def spec_ln(x: np.float32) -> np.float32:
    mantissa, exponent = math.frexp(float(x))
    m, e = F32(mantissa), F32(exponent)
    if m < SPEC["SQRT_HALF"]:
        m, e = m * F32(2), e - F32(1)
    f = m - F32(1)
    s = f / (f + F32(2))
    z, t = s * s, F32(2) * s
    p = z * (SPEC["LOG3"] + z * (SPEC["LOG5"] + z * (SPEC["LOG7"] + z * SPEC["LOG9"])))
    return e * SPEC["LN2_HI"] + (e * SPEC["LN2_LO"] + (t + t * p))


def spec_poly(a: np.float32, cosine: bool) -> np.float32:
    z = a * a
    if cosine:
        c = [SPEC[f"COS{k}"] for k in (2, 4, 6, 8, 10)]
        return F32(1) + z * (c[0] + z * (c[1] + z * (c[2] + z * (c[3] + z * c[4]))))
    c = [SPEC[f"SIN{k}"] for k in (3, 5, 7, 9, 11)]
    return a + (a * z) * (c[0] + z * (c[1] + z * (c[2] + z * (c[3] + z * c[4]))))


def spec_cos_turns(j: int) -> np.float32:
    quadrant, r = j >> 22, j & (2**22 - 1)
    near = r <= 2**19
    a = F32(r if near else 2**22 - r) * SPEC["STEP"]
    c, s = spec_poly(a, near), spec_poly(a, not near)
    return [c, -s, -c, s][quadrant]


def spec_normal(seed, table_hash, id_, element, attempt=0):
    """The module's float32 Box–Muller, written out with NumPy float32 scalars."""
    positive = F32((spec_bits(seed, table_hash, id_, element, attempt, 0) >> 40) + 1) * F32(2**-24)
    angle = spec_bits(seed, table_hash, id_, element, attempt, 1) >> 40
    return np.sqrt(F32(-2) * spec_ln(positive)) * spec_cos_turns(angle)


def double_normal(seed, table_hash, id_, element, attempt=0):
    """Box–Muller of the same 24-bit draws in double precision."""
    positive = ((spec_bits(seed, table_hash, id_, element, attempt, 0) >> 40) + 1) * 2.0**-24
    turns = (spec_bits(seed, table_hash, id_, element, attempt, 1) >> 40) * 2.0**-24
    return math.sqrt(-2.0 * math.log(positive)) * math.cos(2 * math.pi * turns)


def test_mix64_is_splitmix64_finalizer():
    outputs = [int(kernels.mix64(np.uint64(k * 0x9E3779B97F4A7C15 & MASK64))) for k in (1, 2, 3)]
    assert outputs == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F]


@HYPOTHESIS
@given(st.lists(uint64s, min_size=1, max_size=20))
def test_mix64_matches_reference_and_spec(values):
    array = np.array(values, dtype=np.uint64)
    expected = [spec_mix64(v) for v in values]
    assert [int(kernels.mix64(np.uint64(v))) for v in values] == expected
    assert kernels.mix64_reference(array).tolist() == expected


@HYPOTHESIS
@given(int64_lists, uint64s, uint64s, st.integers(1, 9))
def test_uniform_kernel_exposes_spec_bits_exactly(ids, seed, table_hash, dim):
    """uniform(0, 2**24) is exactly bits >> 40, so the top 24 bits are compared."""
    ids = np.array(ids, dtype=np.int64)
    out = np.empty((len(ids), dim), np.float32)
    kernels.fill_uniform(ids, *_one_table(seed, table_hash), 0.0, 2.0**24, out)
    expected = [
        [spec_bits(seed, table_hash, i, j, 0, 0) >> 40 for j in range(dim)] for i in ids.tolist()
    ]
    assert out.astype(np.uint64).reshape(len(ids), dim).tolist() == expected


def test_normal_kernel_follows_spec():
    seed, table_hash, dim = 7, inits.table_hash("spec"), 6
    ids = np.concatenate([EXTREME_IDS, sample_ids(200, seed=5)])
    out = np.empty((len(ids), dim), np.float32)
    kernels.fill_normal(ids, *_one_table(seed, table_hash), 0.0, 1.0, out)
    expected = [[spec_normal(seed, table_hash, int(i), j) for j in range(dim)] for i in ids]
    assert_array_equal(out.view(np.uint32), np.array(expected, np.float32).view(np.uint32))
    double = [[double_normal(seed, table_hash, int(i), j) for j in range(dim)] for i in ids]
    assert_allclose(out, np.array(double), rtol=0, atol=2e-6)  # an accurate Box–Muller


def test_golden_values_are_stable():
    """Pinned outputs: changing them silently would change every new row and break resume."""
    assert inits.table_hash("golden") == 0x4B6C682F91BEDD20
    ids = np.array([0, -1, INT64_MAX], dtype=np.int64)
    uniform = inits.UniformInitializer()(ids, dim=2, seed=0, table="golden")
    expected_uniform = [
        [0.018175482749938965, 0.9983404874801636],
        [0.14652788639068604, 0.8365064263343811],
        [0.456389844417572, 0.8276837468147278],
    ]
    assert_array_equal(uniform, np.array(expected_uniform, dtype=np.float32))
    truncated = inits.TruncNormalInitializer()(ids, dim=2, seed=0, table="golden")
    expected_truncated = [
        [0.521395742893219, 0.02739311195909977],
        [1.8920161724090576, -0.2557051181793213],
        [-0.9861096739768982, -0.5154401659965515],
    ]
    assert_array_equal(truncated, np.array(expected_truncated, dtype=np.float32))


# --- Numba kernels against their NumPy twins -----------------------------------------------------


def run_both(name, ids, *params, dim):
    ids = np.array(ids, dtype=np.int64)
    fast = np.full((len(ids), dim), np.nan, dtype=np.float32)
    slow = fast.copy()
    getattr(kernels, name)(ids, *params, fast)
    getattr(kernels, f"{name}_reference")(ids, *params, slow)
    return fast, slow


@HYPOTHESIS
@given(int64_lists, uint64s, uint64s, finite, finite, st.integers(1, 33))
def test_fill_uniform_matches_reference(ids, seed, table_hash, low, high, dim):
    low, high = min(low, high), max(low, high)
    fast, slow = run_both("fill_uniform", ids, *_one_table(seed, table_hash), low, high, dim=dim)
    assert_array_equal(fast.view(np.uint32), slow.view(np.uint32))


@HYPOTHESIS
@given(int64_lists, uint64s, uint64s, finite, st.floats(0, 100), st.integers(1, 33))
def test_fill_normal_matches_reference(ids, seed, table_hash, mean, std, dim):
    fast, slow = run_both("fill_normal", ids, *_one_table(seed, table_hash), mean, std, dim=dim)
    assert_array_equal(fast.view(np.uint32), slow.view(np.uint32))


@HYPOTHESIS
@given(
    int64_lists,
    uint64s,
    uint64s,
    st.floats(-3, 3),
    st.floats(0.01, 3),
    st.floats(-4, 4),
    st.floats(0.001, 4),
    st.integers(1, 17),
)
def test_fill_truncated_normal_matches_reference(ids, seed, table_hash, mean, std, a, width, dim):
    params = (*_one_table(seed, table_hash), mean, std, a, a + width)
    fast, slow = run_both("fill_truncated_normal", ids, *params, dim=dim)
    assert_array_equal(fast.view(np.uint32), slow.view(np.uint32))
    assert np.all((fast >= np.float32(a)) & (fast <= np.float32(a + width)))


def test_fill_constant_matches_reference():
    fast, slow = np.empty((5, 3), np.float32), np.empty((5, 3), np.float32)
    kernels.fill_constant(-1.5, fast)
    kernels.fill_constant_reference(-1.5, slow)
    assert_array_equal(fast, np.full((5, 3), -1.5, np.float32))
    assert_array_equal(slow, fast)


def test_truncated_normal_falls_back_to_clipping_after_64_attempts():
    ids = np.arange(-50, 50, dtype=np.int64)
    params = (*_one_table(1, 2), 0.0, 1.0, 10.0, 11.0)
    fast, slow = run_both("fill_truncated_normal", ids, *params, dim=4)
    assert_array_equal(fast, np.full((100, 4), 10.0, np.float32))
    assert_array_equal(slow, fast)


# --- Invariances ---------------------------------------------------------------------------------


def sample_ids(count: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    drawn = rng.integers(INT64_MIN, INT64_MAX, size=count, dtype=np.int64, endpoint=True)
    return np.unique(np.concatenate([drawn, EXTREME_IDS, np.arange(-100, 100)]))


@pytest.mark.parametrize("init", ALL_INITIALIZERS, ids=lambda i: type(i).__name__)
def test_rows_do_not_depend_on_order_or_batch_split(init):
    ids = sample_ids(3000)
    rng = np.random.default_rng(1)
    whole = init(ids, 12, 42, "user_emb")
    order = rng.permutation(len(ids))
    assert_array_equal(init(ids[order], 12, 42, "user_emb"), whole[order])
    cuts = np.sort(rng.choice(np.arange(1, len(ids)), size=7, replace=False))
    pieces = [init(part, 12, 42, "user_emb") for part in np.split(ids[order], cuts)]
    assert_array_equal(np.concatenate(pieces), whole[order])
    with_duplicates = np.concatenate([ids[:10], ids[:10]])
    assert_array_equal(init(with_duplicates, 12, 42, "user_emb"), np.tile(whole[:10], (2, 1)))


@pytest.mark.parametrize("init", RANDOM_INITIALIZERS[:3], ids=lambda i: type(i).__name__)
def test_element_values_do_not_depend_on_row_width(init):
    ids = sample_ids(100)
    assert_array_equal(init(ids, 5, 3, "t"), init(ids, 16, 3, "t")[:, :5])


@pytest.mark.parametrize("init", RANDOM_INITIALIZERS, ids=lambda i: type(i).__name__)
def test_tables_seeds_and_ids_give_different_rows(init):
    ids = sample_ids(2000)
    base = init(ids, 8, 0, "user_emb")
    assert len(np.unique(base, axis=0)) == len(ids)
    for other in (init(ids, 8, 1, "user_emb"), init(ids, 8, 0, "item_emb")):
        assert np.mean(other == base) < 0.01
        assert abs(np.corrcoef(other.ravel(), base.ravel())[0, 1]) < 0.05


def test_extreme_ids_and_seeds_give_finite_distinct_rows():
    init = inits.NormalInitializer()
    for seed in (0, 2**63, 2**64 - 1, np.uint64(5), np.int32(5)):
        rows = init(EXTREME_IDS, 4, seed, "t")
        assert np.all(np.isfinite(rows))
        assert len(np.unique(rows, axis=0)) == len(EXTREME_IDS)
    assert_array_equal(init(EXTREME_IDS, 4, np.uint64(5), "t"), init(EXTREME_IDS, 4, 5, "t"))


def test_output_buffer_is_filled_in_place():
    out = np.zeros((3, 4), np.float32)
    result = inits.ConstantInitializer(2.0)(np.array([1, 2, 3]), 4, 0, "t", out=out)
    assert result is out
    assert_array_equal(out, np.full((3, 4), 2.0, np.float32))
    empty = inits.NormalInitializer()(np.empty(0, np.int64), 4, 0, "t")
    assert empty.shape == (0, 4) and empty.dtype == np.float32


# --- Distributions (200k samples; bounds are several standard errors wide) ---------------------

SAMPLE_IDS = np.arange(-6250, 6250, dtype=np.int64)  # 12_500 rows x 16 = 200_000 values


def draw(init, dim=16):
    return init(SAMPLE_IDS, dim, 2024, "stats").astype(np.float64)


def normal_pdf(x):
    return math.exp(-x * x / 2) / math.sqrt(2 * math.pi)


def normal_cdf(x):
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def test_uniform_distribution():
    values = draw(inits.UniformInitializer(-1.0, 3.0))
    assert values.min() >= -1.0 and values.max() <= 3.0
    assert abs(values.mean() - 1.0) < 0.015
    assert abs(values.std() - 4 / math.sqrt(12)) < 0.01
    counts = np.histogram(values, bins=10, range=(-1, 3))[0] / values.size
    assert_allclose(counts, 0.1, atol=0.005)


def test_normal_distribution():
    values = draw(inits.NormalInitializer(0.5, 2.0))
    assert abs(values.mean() - 0.5) < 0.03
    assert abs(values.std() - 2.0) < 0.02
    z = np.abs(values - 0.5) / 2.0
    assert abs(np.mean(z < 1) - 0.6827) < 0.005
    assert abs(np.mean(z > 3) - 0.0027) < 0.001


@pytest.mark.parametrize(
    ("mean", "std", "a", "b"), [(0, 1, -2, 2), (0.5, 1, 0, 3), (0, 0.01, -2, 2)]
)
def test_truncated_normal_distribution(mean, std, a, b):
    values = draw(inits.TruncNormalInitializer(mean, std, a, b))
    assert values.min() >= np.float32(a) and values.max() <= np.float32(b)
    alpha, beta = (a - mean) / std, (b - mean) / std
    mass = normal_cdf(beta) - normal_cdf(alpha)
    shift = (normal_pdf(alpha) - normal_pdf(beta)) / mass
    variance = 1 + (alpha * normal_pdf(alpha) - beta * normal_pdf(beta)) / mass - shift**2
    assert abs(values.mean() - (mean + std * shift)) < 0.01 * std
    assert abs(values.std() - std * math.sqrt(variance)) < 0.01 * std


def torch_std(fill, rows, dim, **kwargs):
    weight = torch.empty(rows, dim, dtype=torch.float64)
    fill(weight, generator=torch.Generator().manual_seed(0), **kwargs)
    return weight.std().item()


@pytest.mark.parametrize("dim", [8, 16])
def test_xavier_scale_matches_torch(dim):
    fan_rows = 20_000 // dim
    uniform = inits.XavierUniformInitializer(gain=1.5, fan_rows=fan_rows)
    normal = inits.XavierNormalInitializer(gain=1.5, fan_rows=fan_rows)
    assert uniform.bound(dim) == pytest.approx(1.5 * math.sqrt(6 / (dim + fan_rows)), rel=1e-14)
    assert normal.std(dim) == pytest.approx(1.5 * math.sqrt(2 / (dim + fan_rows)), rel=1e-14)
    values = draw(uniform, dim)
    assert np.abs(values).max() <= uniform.bound(dim)
    assert np.abs(values).max() > 0.99 * uniform.bound(dim)
    assert draw(normal, dim).std() == pytest.approx(normal.std(dim), rel=0.02)
    reference = torch_std(torch.nn.init.xavier_normal_, fan_rows, dim, gain=1.5)
    assert reference == pytest.approx(normal.std(dim), rel=0.03)


@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
@pytest.mark.parametrize(
    ("a", "nonlinearity"), [(0, "leaky_relu"), (0.2, "leaky_relu"), (0, "tanh")]
)
def test_kaiming_scale_matches_torch(mode, a, nonlinearity):
    dim, fan_rows = 16, 12_500
    uniform = inits.KaimingUniformInitializer(a, mode, nonlinearity, fan_rows)
    normal = inits.KaimingNormalInitializer(a, mode, nonlinearity, fan_rows)
    fan = dim if mode == "fan_in" else fan_rows
    std = torch.nn.init.calculate_gain(nonlinearity, a) / math.sqrt(fan)
    assert normal.std(dim) == pytest.approx(std, rel=1e-14)
    assert uniform.bound(dim) == pytest.approx(math.sqrt(3) * std, rel=1e-14)
    normal_values = draw(normal, dim)
    assert normal_values.std() == pytest.approx(std, rel=0.02)
    assert np.mean(np.abs(normal_values) > std) == pytest.approx(0.3173, abs=0.005)  # normal
    uniform_values = draw(uniform, dim)
    assert uniform_values.std() == pytest.approx(std, rel=0.02)
    assert np.abs(uniform_values).max() <= uniform.bound(dim)
    kwargs = {"a": a, "mode": mode, "nonlinearity": nonlinearity}
    reference = torch_std(torch.nn.init.kaiming_normal_, fan_rows, dim, **kwargs)
    assert reference == pytest.approx(std, rel=0.03)


def test_default_fan_rows_is_recis_block_size():
    assert inits.KaimingNormalInitializer(mode="fan_out").std(16) == math.sqrt(2) / math.sqrt(10240)
    assert inits.XavierNormalInitializer().std(16) == math.sqrt(2 / (16 + 10240))


@pytest.mark.parametrize(
    ("nonlinearity", "param"),
    [("linear", None), ("conv_transpose2d", None), ("sigmoid", None), ("tanh", None),
     ("relu", None), ("selu", None), ("leaky_relu", None), ("leaky_relu", 0), ("leaky_relu", 0.3)],
)  # fmt: skip
def test_calculate_gain_matches_torch(nonlinearity, param):
    expected = torch.nn.init.calculate_gain(nonlinearity, param)
    assert inits.calculate_gain(nonlinearity, param) == expected


# --- Configuration -------------------------------------------------------------------------------


@pytest.mark.parametrize("init", ALL_INITIALIZERS, ids=lambda i: type(i).__name__)
def test_config_round_trips_through_json(init):
    config = json.loads(json.dumps(init.config()))
    assert config["type"] == type(init).__name__
    rebuilt = inits.from_config(config)
    assert rebuilt == init and hash(rebuilt) == hash(init)
    assert_array_equal(rebuilt(EXTREME_IDS, 4, 1, "t"), init(EXTREME_IDS, 4, 1, "t"))


def test_config_is_normalized_and_has_recis_defaults():
    assert inits.UniformInitializer(a=0, b=np.float32(1)).config() == {
        "type": "UniformInitializer",
        "a": 0.0,
        "b": 1.0,
    }
    assert inits.TruncNormalInitializer().config() == {
        "type": "TruncNormalInitializer",
        "mean": 0.0,
        "std": 1.0,
        "a": -2.0,
        "b": 2.0,
    }
    assert inits.KaimingNormalInitializer().config() == {
        "type": "KaimingNormalInitializer",
        "a": 0.0,
        "mode": "fan_in",
        "nonlinearity": "leaky_relu",
        "fan_rows": 10240,
    }
    assert inits.ConstantInitializer().config() == {"type": "ConstantInitializer", "init_val": 0.0}


def test_from_config_rejects_unknown_types_and_fields():
    with pytest.raises(ValueError, match="unknown initializer type 'Orthogonal'"):
        inits.from_config({"type": "Orthogonal"})
    with pytest.raises(TypeError, match="sigma"):
        inits.from_config({"type": "NormalInitializer", "sigma": 1.0})


# --- Argument validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (lambda: inits.UniformInitializer(a=1, b=0), ValueError, "a must be <= b"),
        (lambda: inits.NormalInitializer(std=-1), ValueError, "std must be >= 0"),
        (lambda: inits.NormalInitializer(mean=math.nan), ValueError, "mean must be finite"),
        (lambda: inits.NormalInitializer(std="1"), TypeError, "std must be a real number"),
        (lambda: inits.ConstantInitializer(True), TypeError, "init_val must be a real number"),
        (lambda: inits.TruncNormalInitializer(a=1, b=1), ValueError, "a must be < b"),
        (lambda: inits.TruncNormalInitializer(b=math.inf), ValueError, "b must be finite"),
        (lambda: inits.XavierUniformInitializer(gain=-1), ValueError, "gain must be >= 0"),
        (lambda: inits.XavierNormalInitializer(fan_rows=0), ValueError, "fan_rows must be >= 1"),
        (lambda: inits.XavierNormalInitializer(fan_rows=1.5), TypeError, "fan_rows must be an int"),
        (lambda: inits.KaimingNormalInitializer(mode="fan_avg"), ValueError, "mode must be one"),
        (lambda: inits.KaimingUniformInitializer(nonlinearity="gelu"), ValueError, "nonlinear"),
        (lambda: inits.KaimingUniformInitializer(mode=None), TypeError, "mode must be a str"),
        (lambda: inits.calculate_gain("swish"), ValueError, "nonlinearity must be one of"),
    ],
)
def test_constructor_validation(build, error, match):
    with pytest.raises(error, match=match):
        build()


IDS = np.array([1, 2], dtype=np.int64)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"ids": [1, 2]}, TypeError, "ids must be a NumPy array"),
        ({"ids": IDS.astype(np.int32)}, TypeError, "ids must have dtype int64"),
        ({"ids": IDS.reshape(1, 2)}, ValueError, "ids must be 1-D"),
        ({"dim": 0}, ValueError, "dim must be in"),
        ({"dim": 2**32}, ValueError, "dim must be in"),
        ({"dim": 4.0}, TypeError, "dim must be an int"),
        ({"seed": -1}, ValueError, "seed must be in"),
        ({"seed": 2**64}, ValueError, "seed must be in"),
        ({"seed": 1.0}, TypeError, "seed must be an int"),
        ({"table": 3}, TypeError, "table: expected a str"),
        ({"out": np.empty((2, 4), np.float64)}, TypeError, "out must have dtype float32"),
        ({"out": np.empty((4, 2), np.float32)}, ValueError, r"out must have shape \(2, 4\)"),
        ({"out": np.empty((4, 2), np.float32).T}, ValueError, "out must be C-contiguous"),
        ({"out": [[0.0] * 4] * 2}, TypeError, "out must be a NumPy array"),
    ],
)
def test_call_validation(kwargs, error, match):
    arguments = {"ids": IDS, "dim": 4, "seed": 0, "table": "t", **kwargs}
    with pytest.raises(error, match=match):
        inits.NormalInitializer()(**arguments)


def test_several_tables_in_one_call_match_one_call_per_table():
    init = inits.TruncNormalInitializer(std=0.3)
    ids = np.array([5, 5, -9, 2**63 - 1, 0], np.int64)
    tags = np.array([0, 1, 2, 1, 0])
    names = ["user", "item", "tag"]
    together = init(ids, 4, 11, names, tags=tags)
    for i, (id_, tag) in enumerate(zip(ids, tags, strict=True)):
        alone = init(np.array([id_]), 4, 11, names[tag])
        np.testing.assert_array_equal(together[i], alone[0])
    with pytest.raises(ValueError, match="tags must index the 3 table names"):
        init(ids, 4, 11, names, tags=np.array([0, 1, 3, 0, 0]))

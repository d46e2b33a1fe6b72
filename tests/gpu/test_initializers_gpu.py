"""Initializers on the GPU: the CUDA generator against the CPU one, bits and values (bit for bit:
both compute in float32 with the same operations)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from recis.core import initializers as inits
from recis.core.kernels import random as cpu_random

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
EXTREME_IDS = np.array([INT64_MIN, INT64_MIN + 1, -1, 0, 1, INT64_MAX - 1, INT64_MAX], np.int64)
ALL_INITIALIZERS = [
    inits.ConstantInitializer(0.25),
    inits.UniformInitializer(-0.5, 2.0),
    inits.NormalInitializer(0.0, 0.3),
    inits.NormalInitializer(1.5, 2.0),
    inits.TruncNormalInitializer(0.0, 1.0, -1.0, 1.5),
    inits.TruncNormalInitializer(0.5, 1.0, 2.0, 2.5),  # mostly rejected: many attempts, clipping
    inits.XavierUniformInitializer(gain=2.0, fan_rows=100),
    inits.XavierNormalInitializer(gain=0.5),
    inits.KaimingUniformInitializer(a=0.2, mode="fan_out", nonlinearity="leaky_relu"),
    inits.KaimingNormalInitializer(nonlinearity="tanh"),
]


def assert_same_bits(got: np.ndarray, expected: np.ndarray) -> None:
    assert got.dtype == expected.dtype == np.float32
    np.testing.assert_array_equal(got.view(np.uint32), expected.view(np.uint32))


def test_the_gpu_spells_the_cpu_constants():
    source = (Path(__file__).parents[2] / "cuda" / "random.cuh").read_text(encoding="utf-8")
    spelled = dict(re.findall(r"constexpr float (\w+) = (\S+)f;", source))
    expected = cpu_random.constants()
    assert sorted(spelled) == sorted(expected)
    for name, value in expected.items():
        assert np.float32(float.fromhex(spelled[name])) == value, name


def random_ids(count: int, seed: int, distinct: int | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pool = rng.integers(INT64_MIN, INT64_MAX, distinct or count, dtype=np.int64, endpoint=True)
    ids = pool if distinct is None else pool[rng.integers(0, distinct, count)]
    return np.concatenate([EXTREME_IDS, ids])


@pytest.mark.gpu
@pytest.mark.parametrize(("attempt", "lane"), [(0, 0), (0, 1), (5, 1), (63, 0)])
def test_raw_bits_equal_the_cpu_generator_bit_for_bit(cp, attempt, lane):
    from recis.core.cuda import initializers as gpu_random

    ids = random_ids(2000, seed=attempt)
    tags = np.arange(ids.size) % 3
    streams = np.array([cpu_random.stream_reference(7, h) for h in (1, 2**64 - 1, 12345)])
    keys = cpu_random.mix64_reference(streams[tags] ^ ids.view(np.uint64))
    expected = cpu_random._bits_reference(keys, 33, attempt, lane)
    got = gpu_random.random_bits(cp.asarray(ids), streams, cp.asarray(tags), 1, 33, attempt, lane)
    np.testing.assert_array_equal(cp.asnumpy(got), expected)
    one_table = gpu_random.random_bits(
        cp.asarray(ids), streams, np.array([1]), 0, 33, attempt, lane
    )
    keys = cpu_random.mix64_reference(streams[1] ^ ids.view(np.uint64))
    np.testing.assert_array_equal(
        cp.asnumpy(one_table), cpu_random._bits_reference(keys, 33, attempt, lane)
    )


@pytest.mark.gpu
@pytest.mark.parametrize("init", ALL_INITIALIZERS, ids=lambda i: repr(i))
@pytest.mark.parametrize("dim", [1, 7, 64])
def test_every_initializer_equals_the_cpu(cp, init, dim):
    ids = random_ids(3000, seed=dim)
    expected = init(ids, dim, 2**64 - 1, "user_emb")
    got = init(cp.asarray(ids), dim, 2**64 - 1, "user_emb")
    assert isinstance(got, cp.ndarray) and got.dtype == np.float32 and got.shape == (ids.size, dim)
    assert_same_bits(cp.asnumpy(got), expected)


@pytest.mark.gpu
def test_a_million_ids_full_of_duplicates(cp):
    ids = random_ids(1_000_000, seed=3, distinct=5000)
    init = inits.TruncNormalInitializer(std=0.02)
    expected = init(ids, 16, 42, "item")
    got = cp.asnumpy(init(cp.asarray(ids), 16, 42, "item"))
    assert_same_bits(got, expected)
    first = {}
    for position, id_ in enumerate(ids.tolist()):
        first.setdefault(id_, position)
    np.testing.assert_array_equal(got, got[[first[i] for i in ids.tolist()]])


@pytest.mark.gpu
def test_several_tables_in_one_call_and_tags_that_name_no_table(cp):
    init = inits.NormalInitializer(std=0.5)
    ids = random_ids(500, seed=4)
    tags = np.random.default_rng(4).integers(0, 3, ids.size)
    names = ["user", "item", "shop"]
    expected = init(ids, 5, 9, names, tags=tags)
    got = init(cp.asarray(ids), 5, 9, names, tags=cp.asarray(tags))
    assert_same_bits(cp.asnumpy(got), expected)
    bad = cp.asarray(np.array([0, 3, -1, 2]))
    rows = cp.asnumpy(init(cp.asarray(ids[:4]), 5, 9, names, tags=bad))
    assert np.isnan(rows[1:3]).all() and np.isfinite(rows[[0, 3]]).all()


@pytest.mark.gpu
def test_out_is_filled_in_place_and_must_be_on_the_gpu(cp):
    init = inits.UniformInitializer(-1.0, 1.0)
    ids = EXTREME_IDS
    out = cp.empty((ids.size, 3), np.float32)
    assert init(cp.asarray(ids), 3, 0, "t", out=out) is out
    assert_same_bits(cp.asnumpy(out), init(ids, 3, 0, "t"))
    with pytest.raises(TypeError, match="out must be a CuPy array"):
        init(cp.asarray(ids), 3, 0, "t", out=np.empty((ids.size, 3), np.float32))
    empty = init(cp.asarray(np.empty(0, np.int64)), 3, 0, "t")
    assert isinstance(empty, cp.ndarray) and empty.shape == (0, 3)

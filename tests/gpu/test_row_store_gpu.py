"""RowStore on the GPU: CUDA gather/scatter/fill against the CPU store, every storage dtype."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from recis.core.row_store import RowStore

STORAGE = [
    (np.float32, 4),
    (np.float32, 3),
    (np.float16, 8),
    (np.float16, 3),
    (ml_dtypes.bfloat16, 8),
    (ml_dtypes.bfloat16, 1),
    (np.float64, 2),
]


def bits(array: np.ndarray) -> np.ndarray:
    """The raw words of a NumPy array, to compare floats bit for bit."""
    return array.view(f"u{array.dtype.itemsize}")


def twin_stores(dim, dtype, block_rows=64, rows=300):
    """A CPU and a GPU store of the same shape, with an int64 and a 2-D float32 slot."""
    stores = [RowStore(dim, dtype, block_rows, "t", device) for device in ("cpu", "cuda")]
    for store in stores:
        store.add_slot("step", (), np.int64, fill=-1)
        store.add_slot("moments", (2, 3), np.float32, fill=0.5)
        store.ensure_rows(rows)
    return stores


@pytest.mark.gpu
@pytest.mark.parametrize(("dtype", "dim"), STORAGE)
def test_scatter_then_gather_matches_the_cpu_store_bit_for_bit(cp, dtype, dim):
    rng = np.random.default_rng(dim)
    cpu, gpu = twin_stores(dim, dtype)
    rows = rng.integers(0, cpu.capacity, 500)  # many repeats: the last position wins
    values = (rng.standard_normal((500, dim)) * 100).astype(np.float32)
    cpu.scatter(rows, values)
    gpu.scatter(cp.asarray(rows), cp.asarray(values))
    probe = rng.integers(0, cpu.capacity, 700)
    expected = cpu.gather(probe)
    raw = gpu.gather(cp.asarray(probe), dtype=bits(expected).dtype)
    np.testing.assert_array_equal(cp.asnumpy(raw), bits(expected))
    floats = gpu.gather(cp.asarray(probe), dtype=np.float32)
    np.testing.assert_array_equal(cp.asnumpy(floats), expected.astype(np.float32))


@pytest.mark.gpu
def test_slots_of_every_shape_fill_scatter_and_reset_like_the_cpu(cp):
    rng = np.random.default_rng(1)
    cpu, gpu = twin_stores(4, np.float32)
    rows = rng.integers(0, 300, 50)
    steps = rng.integers(-(2**62), 2**62, 50)
    moments = rng.standard_normal((50, 2, 3)).astype(np.float32)
    for store, xp_rows, xp_steps, xp_moments in (
        (cpu, rows, steps, moments),
        (gpu, cp.asarray(rows), cp.asarray(steps), cp.asarray(moments)),
    ):
        store.scatter(xp_rows, xp_steps, "step")
        store.scatter(xp_rows, xp_moments, "moments")
        store.reset(xp_rows[:10])
    probe = np.arange(300)
    for field in ("step", "moments"):
        expected = cpu.gather(probe, field)
        got = cp.asnumpy(gpu.gather(cp.asarray(probe), field))
        assert got.dtype == expected.dtype and got.shape == expected.shape
        np.testing.assert_array_equal(got, expected)


@pytest.mark.gpu
def test_a_million_rows_with_duplicates(cp):
    rng = np.random.default_rng(2)
    cpu, gpu = twin_stores(16, ml_dtypes.bfloat16, block_rows=16384, rows=200_000)
    rows = rng.integers(0, 200_000, 1_000_000)
    values = rng.standard_normal((1_000_000, 16)).astype(np.float32)
    cpu.scatter(rows, values)
    gpu.scatter(cp.asarray(rows), cp.asarray(values))
    probe = np.arange(200_000)
    expected = bits(cpu.gather(probe))
    np.testing.assert_array_equal(
        cp.asnumpy(gpu.gather(cp.asarray(probe), dtype=np.uint16)), expected
    )


@pytest.mark.gpu
def test_values_at_any_alignment(cp):
    cpu, gpu = twin_stores(4, np.float32)  # 16-byte rows: copied 16 bytes at a time if aligned
    values = np.arange(41, dtype=np.float32)
    cpu.scatter(np.arange(10), values[1:].reshape(10, 4))
    gpu.scatter(cp.asarray(np.arange(10)), cp.asarray(values)[1:].reshape(10, 4))  # 4 bytes in
    np.testing.assert_array_equal(
        cp.asnumpy(gpu.gather(cp.asarray(np.arange(10)))), cpu.gather(np.arange(10))
    )


HALF_CASES = [1 + 2**-11, 1 + 3 * 2**-11, 1 + 2**-8, 1 + 3 * 2**-8, 2**-25, -(2**-24) * 1.5]
HALF_CASES += [7e4, -7e4, 3.4e38, 1e-40, -0.0, np.inf, 65519.0, 65520.0]


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16])
def test_float32_rounds_to_half_precision_as_numpy_and_ml_dtypes(cp, dtype):
    values = np.array(HALF_CASES, np.float32).reshape(-1, 2)
    if dtype is ml_dtypes.bfloat16:
        values[0] = [np.nan, -np.nan]
    cpu, gpu = twin_stores(2, dtype)
    rows = np.arange(len(values))
    with np.errstate(over="ignore", invalid="ignore"):
        cpu.scatter(rows, values)
    gpu.scatter(cp.asarray(rows), cp.asarray(values))
    np.testing.assert_array_equal(
        cp.asnumpy(gpu.gather(cp.asarray(rows), dtype=np.uint16)), bits(cpu.gather(rows))
    )


@pytest.mark.gpu
def test_rows_outside_the_store_read_zeros_and_are_not_written(cp):
    store = RowStore(2, np.float32, 4, "t", "cuda")
    store.ensure_rows(4)
    store.scatter(cp.asarray([0, 1, 2, 3]), cp.ones((4, 2), np.float32))
    store.scatter(cp.asarray([-1, 4, 1000]), cp.full((3, 2), 7, np.float32))
    got = store.gather(cp.asarray([-1, 0, 3, 4, 1000]))
    assert cp.asnumpy(got).tolist() == [[0, 0], [1, 1], [1, 1], [0, 0], [0, 0]]


@pytest.mark.gpu
def test_growth_keeps_blocks_in_place_and_new_blocks_hold_the_fill(cp):
    store = RowStore(3, np.float32, 8, "t", "cuda")
    store.add_slot("step", (), np.int64, fill=-1)
    store.ensure_rows(5)
    first = store.blocks()[0].data.ptr
    store.scatter(cp.asarray([4]), cp.asarray([[1, 2, 3]], np.float32))
    store.ensure_rows(30)
    assert store.num_blocks == 4 and store.blocks()[0].data.ptr == first
    assert cp.asnumpy(store.gather(cp.asarray([4, 29]))).tolist() == [[1, 2, 3], [0, 0, 0]]
    assert cp.asnumpy(store.gather(cp.asarray([29]), "step")).tolist() == [-1]


@pytest.mark.gpu
def test_bfloat16_needs_float32_or_raw_words_on_the_gpu(cp):
    store = RowStore(2, ml_dtypes.bfloat16, 4, "t", "cuda")
    store.ensure_rows(1)
    with pytest.raises(TypeError, match="CuPy has no bfloat16"):
        store.gather(cp.asarray([0]))

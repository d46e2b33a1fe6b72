"""RowStore: block growth without moving rows, fields of any dtype, kernels vs twins."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recis.core.kernels import row_store as kernels
from recis.core.row_store import RowStore


def test_growth_adds_blocks_and_never_moves_rows():
    store = RowStore(dim=3, block_rows=8)
    store.ensure_rows(5)
    first_block = store._blocks["embedding"][0]
    values = np.arange(15, dtype=np.float32).reshape(5, 3)
    store.scatter(np.arange(5), values)
    store.ensure_rows(30)
    assert store.num_blocks == 4 and store.capacity == 32
    assert store._blocks["embedding"][0].ctypes.data == first_block.ctypes.data
    np.testing.assert_array_equal(store.gather(np.arange(5)), values)


@pytest.mark.parametrize("live_rows", [1, 100, 128, 1000])
def test_memory_is_live_rows_plus_at_most_one_partial_block(live_rows):
    store = RowStore(dim=16, block_rows=128)
    store.add_slot("exp_avg", (16,))
    store.add_slot("last_seen", (), np.int64, fill=-1)
    store.ensure_rows(live_rows)
    bytes_per_row = 16 * 4 * 2 + 8
    assert live_rows * bytes_per_row <= store.nbytes < (live_rows + 128) * bytes_per_row


def test_slots_have_their_own_shape_dtype_and_fill():
    store = RowStore(dim=2, block_rows=4)
    store.ensure_rows(6)
    store.add_slot("step", (), np.int64, fill=-1)
    store.add_slot("moments", (2, 2), np.float32, fill=0.5)
    assert store.gather(np.array([0, 5]), "step").tolist() == [-1, -1]
    assert store.gather(np.array([3]), "moments").tolist() == [[[0.5, 0.5], [0.5, 0.5]]]
    store.scatter(np.array([1]), np.array([[[1, 2], [3, 4]]]), "moments")
    store.reset(np.array([1, 2]))
    assert store.gather(np.array([1]), "moments").tolist() == [[[0.5, 0.5], [0.5, 0.5]]]
    with pytest.raises(ValueError, match="slot 'step' already exists"):
        store.add_slot("step")


@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16, np.float64])
def test_low_and_high_precision_storage_round_trips(dtype):
    store = RowStore(dim=4, dtype=dtype, block_rows=4)
    store.ensure_rows(9)
    values = np.array([[1.5, -2.0, 0.25, 3.0]] * 3, np.float32)
    store.scatter(np.array([8, 0, 4]), values)
    out = store.gather(np.array([4, 8]))
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out.astype(np.float32), values[:2])


def test_rows_out_of_range_name_the_table():
    store = RowStore(dim=2, block_rows=4, name="user_emb")
    store.ensure_rows(4)
    with pytest.raises(IndexError, match=r"'user_emb': rows must lie in \[0, 4\)"):
        store.gather(np.array([4]))
    with pytest.raises(ValueError, match="embedding values must be"):
        store.scatter(np.array([0]), np.ones((1, 3)))
    with pytest.raises(KeyError, match="no field 'nope'"):
        store.gather(np.array([0]), "nope")


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 300), st.integers(1, 5), st.sampled_from([1, 4, 64]), st.integers(0, 99))
def test_kernels_match_twins(n, width, block_rows, seed):
    rng = np.random.default_rng(seed)
    num_blocks = 5
    blocks = [
        rng.standard_normal((block_rows, width)).astype(np.float32) for _ in range(num_blocks)
    ]
    rows = rng.integers(0, num_blocks * block_rows, n)
    log2 = block_rows.bit_length() - 1
    plans = [(np.empty(n, np.int64), np.empty(num_blocks + 1, np.int64)) for _ in range(2)]
    kernels.bucket_by_block(rows, log2, num_blocks, *plans[0])
    kernels.bucket_by_block_reference(rows, log2, num_blocks, *plans[1])
    np.testing.assert_array_equal(plans[0][0], plans[1][0])
    np.testing.assert_array_equal(plans[0][1], plans[1][1])

    store = RowStore(dim=width, block_rows=block_rows)
    store.ensure_rows(num_blocks * block_rows)
    stored = [block.view(np.float32) for block in store._blocks["embedding"]]  # kernels see uint32
    for mine, theirs in zip(stored, blocks, strict=True):
        mine[:] = theirs
    np.testing.assert_array_equal(store.gather(rows), np.concatenate(blocks)[rows])

    distinct = np.unique(rows)
    values = rng.standard_normal((distinct.size, width)).astype(np.float32)
    order, bounds = np.empty(distinct.size, np.int64), np.empty(num_blocks + 1, np.int64)
    kernels.bucket_by_block(distinct, log2, num_blocks, order, bounds)
    kernels.scatter(store._blocks["embedding"], distinct, order, bounds, values.view(np.uint32))
    kernels.scatter_reference(blocks, distinct, order, bounds, values)
    for mine, theirs in zip(stored, blocks, strict=True):
        np.testing.assert_array_equal(mine, theirs)
    out = np.empty((rows.size, width), np.float32)
    kernels.gather_reference(blocks, rows, *plans[1], out)
    np.testing.assert_array_equal(store.gather(rows), out)

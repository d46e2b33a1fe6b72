"""The host-side logic of sync-free GPU steps, run with NumPy: rows allocated for a count the host
never reads, gradient sums padded to a fixed size, and padded deduplication feeding a table's
lookups — each against the exact computation it replaces. The GPU runs the same code on CuPy
arrays (``tests/gpu/test_sync_free_gpu.py``)."""

from __future__ import annotations

import numpy as np
import pytest

from recis.core.cuda.row_allocator import allocate_ranked
from recis.core.cuda.segment import row_groups
from recis.core.dedupe import first_occurrences, occurrence_counts, sum_by_index, unique_inverse
from recis.core.initializers import NormalInitializer
from recis.core.row_allocator import RowAllocator
from recis.core.table import EmbeddingTable


@pytest.mark.parametrize("seed", range(4))
def test_ranked_allocation_hands_out_the_host_allocators_rows(seed):
    rng = np.random.default_rng(seed)
    host = RowAllocator()
    state, free = np.zeros(3, np.int64), np.empty(0, np.int64)
    live: list[int] = []
    for _ in range(40):
        if live and rng.random() < 0.4:
            released = rng.choice(live, int(rng.integers(1, len(live) + 1)), replace=False)
            host.release(released)
            free = np.concatenate([free[: state[1]], released])
            state[1] = free.size
            live = sorted(set(live) - set(released.tolist()))
        count, padding = int(rng.integers(0, 30)), int(rng.integers(0, 10))
        got = allocate_ranked(np, state, free, np.array(count), count + padding)
        want = host.allocate(count)
        np.testing.assert_array_equal(got[:count], want)
        assert (got[count:] == -1).all()
        assert (state[0], state[1]) == (host.high_water, host.num_free)
        live += want.tolist()


@pytest.mark.parametrize("seed", range(6))
def test_row_groups_sum_like_the_exact_sums(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 300))
    rows = rng.integers(-1, 1 + int(rng.integers(1, 60)), n)
    values = rng.standard_normal((n, 3)).astype(np.float32)
    distinct, order, begin, end = row_groups(rows)
    assert distinct.size == order.size == begin.size == end.size == n
    kept = distinct >= 0
    want_rows, inverse = unique_inverse(rows[rows >= 0])
    np.testing.assert_array_equal(distinct[kept], want_rows)
    assert (begin[~kept] == end[~kept]).all()
    sums = np.array([values[order[b:e]].sum(0) for b, e in zip(begin, end, strict=True)])
    want = sum_by_index(values[rows >= 0], inverse, want_rows.size)
    np.testing.assert_allclose(sums[kept], want, rtol=1e-5, atol=1e-6)
    for b, e in zip(begin, end, strict=True):  # each group in position order
        assert (np.diff(order[b:e]) > 0).all()


def test_padded_first_occurrences_pad_with_uncounted_position_zero():
    keys = np.array([9, 4, 9, 9, 2, 4])
    exact, inverse = first_occurrences(keys)
    padded, padded_inverse = first_occurrences(keys, padded=True)
    assert exact.tolist() == [0, 1, 4] and padded.tolist() == [0, 1, 4, 0, 0, 0]
    np.testing.assert_array_equal(padded_inverse, inverse)
    assert occurrence_counts(padded_inverse, keys.size).tolist() == [3, 2, 1, 0, 0, 0]
    assert first_occurrences(np.empty(0, np.int64), padded=True)[0].size == 0


def test_a_lookup_of_a_padded_batch_equals_the_exact_lookup():
    rng = np.random.default_rng(7)
    init = NormalInitializer(std=0.1)
    exact, padded = (EmbeddingTable("t", 3, init, seed=1, children=["a", "b"]) for _ in range(2))
    for _ in range(4):
        ids, tags = rng.integers(0, 30, 50), rng.integers(0, 2, 50)
        first, inverse = first_occurrences(ids, tags)
        want = exact.lookup(ids[first], tags[first], occurrence_counts(inverse, first.size))
        first, inverse = first_occurrences(ids, tags, padded=True)
        counts = occurrence_counts(inverse, first.size)
        got = padded.lookup(ids[first], tags[first], counts)
        np.testing.assert_array_equal(got.values[inverse], want.values[inverse])
        np.testing.assert_array_equal(got.rows[: want.rows.size], want.rows)
        assert (got.rows[want.rows.size :] == -1).all() and not got.values[counts == 0].any()
        assert got.stats == want.stats
    for name, value in exact.state_dict().items():
        np.testing.assert_array_equal(padded.state_dict()[name], value, err_msg=name)

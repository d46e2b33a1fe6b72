"""Row gathering and taking on dense and ragged columns, against per-row Python references."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recis.core.arrays import ALIGNMENT
from recis.core.ragged import Ragged
from recis.io.row_ops import gather_ranges, num_rows, take_rows


def random_ragged(rng: np.random.Generator, rows: int, levels: int, weighted: bool) -> Ragged:
    offsets, count = [], rows
    for _ in range(levels):
        level = np.zeros(count + 1, np.int64)
        np.cumsum(rng.integers(0, 4, count), out=level[1:])
        offsets.append(level)
        count = int(level[-1])
    weights = rng.random(count).astype(np.float32) if weighted else None
    return Ragged(rng.integers(-100, 100, count), tuple(offsets), weights)


def nested_rows(ragged: Ragged) -> list:
    """Every row as nested Python lists of (value, weight) pairs."""
    weights = ragged.weights if ragged.weights is not None else np.zeros(len(ragged.values))
    items = list(zip(ragged.values.tolist(), weights.tolist(), strict=True))
    for offsets in reversed(ragged.offsets):
        items = [items[a:b] for a, b in pairwise(offsets.tolist())]
    return items


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), levels=st.integers(1, 3), weighted=st.booleans())
def test_gather_and_take_match_row_by_row_references(seed, levels, weighted):
    rng = np.random.default_rng(seed)
    columns = [random_ragged(rng, int(rng.integers(0, 6)), levels, weighted) for _ in range(3)]
    ranges = []
    for column in columns:
        start = int(rng.integers(0, num_rows(column) + 1))
        ranges.append((column, start, int(rng.integers(start, num_rows(column) + 1))))
    if sum(stop - start for _, start, stop in ranges) == 0:
        ranges.append((columns[0], 0, num_rows(columns[0])))
    gathered = gather_ranges(ranges)
    expected = [row for column, a, b in ranges for row in nested_rows(column)[a:b]]
    assert nested_rows(gathered) == expected
    rows = rng.integers(0, max(1, num_rows(gathered)), 7) if expected else np.zeros(0, np.int64)
    assert nested_rows(take_rows(gathered, rows)) == [expected[i] for i in rows]


def test_dense_columns_gather_and_take_into_new_aligned_writable_arrays():
    a, b = np.arange(12.0).reshape(6, 2), np.arange(100.0, 104.0).reshape(2, 2)
    a.flags.writeable = False
    gathered = gather_ranges([(a, 4, 6), (b, 0, 1)])
    np.testing.assert_array_equal(gathered, [[8, 9], [10, 11], [100, 101]])
    assert gathered.flags.writeable and gathered.ctypes.data % ALIGNMENT == 0
    np.testing.assert_array_equal(take_rows(a, np.array([5, 0])), [[10, 11], [0, 1]])


def test_object_columns_are_gathered():
    names = np.array(["a", "b", "c"], dtype=object)
    assert gather_ranges([(names, 1, 3), (names, 0, 1)]).tolist() == ["b", "c", "a"]
    assert take_rows(names, np.array([2])).tolist() == ["c"]


@pytest.mark.parametrize("weighted", [False, True])
def test_gathered_ragged_does_not_share_memory_with_its_input(weighted):
    ragged = random_ragged(np.random.default_rng(1), 5, 1, weighted)
    gathered = gather_ranges([(ragged, 0, 5)])
    assert not np.shares_memory(gathered.values, ragged.values)
    assert gathered.values.ctypes.data % ALIGNMENT == 0

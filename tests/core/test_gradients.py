"""GradientBuffer: summation per row, the distinct fast path, dropped rows."""

from __future__ import annotations

import numpy as np
import pytest

from recis.core.gradients import GradientBuffer


def test_repeated_rows_across_pieces_are_summed_and_divided():
    buffer = GradientBuffer(dim=1)
    buffer.add(np.array([4, 2]), np.array([[1.0], [2.0]]), distinct=True)
    buffer.add(np.array([2, -1]), np.array([[3.0], [9.0]]), distinct=True)
    rows, grads = buffer.summed(divisor=2)
    assert rows.tolist() == [4, 2] and grads.tolist() == [[0.5], [2.5]]


def test_a_lone_distinct_piece_is_returned_divided_without_touching_the_buffer():
    buffer = GradientBuffer(dim=2)
    grads = np.ones((2, 2), np.float32)
    buffer.add(np.array([7, 3]), grads, distinct=True)
    rows, summed = buffer.summed(divisor=4)
    assert rows.tolist() == [7, 3] and summed.tolist() == [[0.25, 0.25]] * 2
    summed[0] = 100.0
    assert buffer.summed(divisor=1)[1].tolist() == [[1.0, 1.0]] * 2


def test_clear_and_shape_errors():
    buffer = GradientBuffer(dim=2)
    buffer.add(np.array([1]), np.ones((1, 2)))
    buffer.clear()
    assert not buffer and buffer.summed(1)[0].size == 0
    with pytest.raises(ValueError, match=r"gradients must be \[1, 2\]"):
        buffer.add(np.array([1]), np.ones((1, 3)))

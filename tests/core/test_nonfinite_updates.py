"""A non-finite gradient stops the whole update: no table is half-updated, and the gradients
are dropped, so a caller that catches the error never applies them later."""

from __future__ import annotations

import numpy as np
import pytest

from recis.core.errors import NonFiniteGradientError
from recis.core.optim import SGD
from recis.core.optim.updater import SparseUpdater
from recis.core.table import EmbeddingTable


def test_a_nan_in_one_table_leaves_every_table_unchanged_and_clears_the_gradients():
    tables = [EmbeddingTable(name, dim=2) for name in ("a", "b")]
    updater = SparseUpdater(SGD(), tables)
    rows = [t.find_or_insert(np.array([1, 2])).rows for t in tables]
    before = [t.gather(r).copy() for t, r in zip(tables, rows, strict=True)]
    updater.accumulate(tables[0], rows[0], np.ones((2, 2), np.float32))
    updater.accumulate(tables[1], rows[1], np.array([[1, np.nan], [1, 1]], np.float32))
    with pytest.raises(NonFiniteGradientError, match="table 'b'"):
        updater.step(lr=1.0)
    for table, r, old in zip(tables, rows, before, strict=True):
        np.testing.assert_array_equal(table.gather(r), old)
        assert not table.grads
    assert updater.steps == {"a": 0, "b": 0}
    updater.accumulate(tables[0], rows[0], np.ones((2, 2), np.float32))
    updater.step(lr=1.0)  # applies this gradient once, nothing of the failed step
    np.testing.assert_array_equal(tables[0].gather(rows[0]), before[0] - 1)

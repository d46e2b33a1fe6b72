"""stats() reports the bytes a table really holds, per id, and the peak while its id map grows
(measured with tracemalloc, which sees NumPy's allocations)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from recis.core.optim import Adagrad
from recis.core.optim.updater import SparseUpdater
from recis.core.table import EmbeddingTable


def warm_up() -> None:
    EmbeddingTable("warm", dim=8).find_or_insert(np.arange(1000))  # loads the kernels


def test_bytes_per_id_is_what_the_table_holds_with_its_optimizer_slots():
    warm_up()
    ids = np.random.default_rng(0).integers(0, 2**62, 300_000)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        table = EmbeddingTable("t", dim=8)
        SparseUpdater(Adagrad(), [table])  # adds its slot to every row
        for batch in np.array_split(ids, 6):
            table.find_or_insert(batch)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    stats = table.stats()
    assert stats["bytes"] == pytest.approx(held, rel=0.03)
    assert stats["bytes_per_id"] == pytest.approx(held / 300_000, rel=0.03)
    # the formula of the README: 16 B per id-map slot, dim × 4 B of rows and of Adagrad state
    rows = table.store.capacity * 8 * 4 * 2
    assert stats["bytes"] == 16 * stats["capacity"] + rows + table.ids.rows.nbytes


def test_growth_peak_is_reported_before_the_id_map_grows():
    """The id map grows in place on the CPU: its slots double, no second array is held."""
    warm_up()
    tracemalloc.start()  # before the table: the slots' reallocation is seen whole
    try:
        table = EmbeddingTable("t", dim=8)
        table.find_or_insert(np.arange(2**17))  # exactly at the maximum load of 0.5
        held_before, predicted = (table.stats()[k] for k in ("bytes", "growth_peak_bytes"))
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        table.find_or_insert(np.arange(2**17, 2**17 + 100))  # grows the id map
        held_after = tracemalloc.get_traced_memory()[0] - before
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert table.stats()["capacity"] == 2**19
    assert held_after == pytest.approx(16 * 2**18 + table.store.block_bytes, rel=0.01)
    assert held_before + peak == pytest.approx(predicted, rel=0.02)

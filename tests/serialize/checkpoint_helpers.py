"""Tables with every kind of state, a deterministic training step, and bitwise comparisons."""

from __future__ import annotations

import ml_dtypes
import numpy as np

from recis.core.dedupe import first_occurrences
from recis.core.initializers import NormalInitializer
from recis.core.optim import Adam
from recis.core.optim.updater import SparseUpdater
from recis.core.policies import (
    CapacityEviction,
    FrequencyAdmission,
    GlobalStepEviction,
)
from recis.core.table import EmbeddingTable


def make_tables(layout=None) -> dict[str, EmbeddingTable]:
    """Physical tables {name: children}; by default a merged bfloat16 table with LRU eviction
    and frequency admission, and a float32 one with global-step eviction."""
    layout = layout or {"user+1": ["user", "item"], "query": ["query"]}
    tables = {}
    for name, children in layout.items():
        merged = len(children) > 1
        tables[name] = EmbeddingTable(
            name,
            dim=4,
            initializer=NormalInitializer(std=0.1),
            seed=5,
            dtype=ml_dtypes.bfloat16 if merged else np.float32,
            block_rows=16,
            children=children,
            admission=FrequencyAdmission(2) if merged else None,
            eviction=CapacityEviction(max_size=60) if merged else GlobalStepEviction(filter_step=3),
        )
    return tables


def make_updater(tables: dict[str, EmbeddingTable]) -> SparseUpdater:
    return SparseUpdater(Adam(), tables.values())


def train_step(tables: dict[str, EmbeddingTable], updater: SparseUpdater, step: int) -> None:
    """One training step on batch number ``step`` (the same batch whatever the history)."""
    rng = np.random.default_rng(step)
    for table in tables.values():
        for tag, _ in enumerate(table.children):
            ids = rng.integers(0, 60, 24)
            first, inverse = first_occurrences(ids, tag)
            counts = np.bincount(inverse, minlength=first.size)
            rows = table.lookup(ids[first], tag, counts).rows
            grads = rng.standard_normal((rows.size, table.dim)).astype(np.float32)
            updater.accumulate(table, rows, grads)
        if isinstance(table.eviction, GlobalStepEviction):
            table.eviction.advance()
            table.evict_stale()
    updater.step(lr=0.05)


def by_id(table: EmbeddingTable) -> dict[str, dict]:
    """Per logical table: id → (embedding bits, every slot's bits)."""
    state = table.state_dict()
    out = {}
    for tag, child in enumerate(table.children):
        mine = np.flatnonzero(state["tag"] == tag)
        out[child] = {
            int(state["id"][i]): tuple(state[f][i].tobytes() for f in table.store.fields)
            for i in mine
        }
    return out


def assert_same_state(a: EmbeddingTable, b: EmbeddingTable) -> None:
    """Bitwise equal state dicts: same ids, rows, values, slots and policy state (ids pending
    admission in any order: their order is internal to the admission policy)."""
    sa, sb = a.state_dict(), b.state_dict()
    assert sorted(sa) == sorted(sb)
    for key in sa:
        if not key.startswith("admission."):
            assert_bits_equal(sa[key], sb[key], key)
    assert a.admission.state().keys() == b.admission.state().keys()
    assert pending(a) == pending(b)
    assert a.stats_total == b.stats_total


def pending(table: EmbeddingTable) -> dict[tuple[int, int], int]:
    """Ids waiting for admission: (id, tag) → count (empty without such a policy)."""
    state = table.admission.state()
    if not state:
        return {}
    keys = zip(state["keys"].tolist(), state["tags"].tolist(), strict=True)
    return dict(zip(keys, state["counts"].tolist(), strict=True))


def assert_bits_equal(a: np.ndarray, b: np.ndarray, what: str = "") -> None:
    a, b = np.asarray(a), np.asarray(b)
    assert (a.dtype, a.shape) == (b.dtype, b.shape), what
    assert a.tobytes() == b.tobytes(), what

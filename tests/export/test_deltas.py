"""A full export equals the previous bundle with every delta applied, bit for bit, over many
rounds of training with admission and eviction: from live tables (change log) and from
checkpoints (row comparison)."""

from __future__ import annotations

import numpy as np
import pytest
from safetensors import safe_open

from recis.checkpoint import save_tables
from recis.core.initializers import NormalInitializer
from recis.core.optim import Adam
from recis.core.optim.updater import SparseUpdater
from recis.core.policies import CapacityEviction, FrequencyAdmission, GlobalStepEviction
from recis.core.table import EmbeddingTable
from recis.export import Bundle, BundleError, export_checkpoint, export_tables


def make_tables() -> dict[str, EmbeddingTable]:
    init = NormalInitializer(std=0.1)
    merged = EmbeddingTable(
        "user+item",
        dim=4,
        initializer=init,
        children=["user", "item"],
        admission=FrequencyAdmission(2),
        eviction=CapacityEviction(max_size=150, policy="lru"),
        block_rows=64,
    )
    clicks = EmbeddingTable(
        "clicks", dim=3, initializer=init, eviction=GlobalStepEviction(filter_step=3)
    )
    return {"user+item": merged, "clicks": clicks}


def train_round(tables, updater, rng, steps: int = 3) -> None:
    """A few steps of lookups (Zipf-like ids), random gradients and Adam updates."""
    for _ in range(steps):
        for table in tables.values():
            ids = np.unique(rng.zipf(1.3, 120) % 400)
            tags = rng.integers(0, len(table.children), ids.size)
            if len(table.children) == 1:
                tags = None
            found = table.lookup(ids, tags)
            used = found.rows[found.rows >= 0]
            updater.accumulate(table, used, rng.normal(size=(used.size, table.dim)).astype("f4"))
        updater.step(lr=0.05)
        tables["clicks"].eviction.advance()
        tables["clicks"].evict_stale()


def assert_same_state(chained: Bundle, full: Bundle) -> None:
    state, expected = chained.state(), full.state()
    assert sorted(state) == sorted(expected) == ["clicks", "item", "user"]
    for name in expected:
        assert state[name].equals(expected[name]), name


@pytest.mark.parametrize("dtype", ["float32", "int8", "bfloat16"])
def test_live_deltas_over_many_rounds_equal_full_exports(tmp_path, dtype):
    rng = np.random.default_rng(0)
    tables = make_tables()
    updater = SparseUpdater(Adam(), tables.values())
    train_round(tables, updater, rng)
    previous = export_tables(tmp_path / "base", tables, dtype=dtype, step=0)
    removed = written = 0
    for round_ in range(1, 13):
        train_round(tables, updater, rng)
        delta = export_tables(
            tmp_path / f"delta-{round_}", tables, dtype=dtype, step=round_, since=previous
        )
        full = export_tables(tmp_path / f"full-{round_}", tables, dtype=dtype, step=round_)
        assert_same_state(delta, full)
        assert [b.step for b in delta.chain()] == list(range(round_ + 1))
        rows = delta.rows()
        written += sum(len(r) for r in rows.values())
        removed += sum(r.removed.size for r in rows.values())
        # a delta holds fewer rows than the tables: only those written since
        assert sum(len(r) for r in rows.values()) < sum(len(r) for r in full.rows().values())
        previous = delta
    assert removed > 50 and written > 0  # eviction and admission both happened


def test_checkpoint_deltas_over_many_rounds_equal_full_exports(tmp_path):
    rng = np.random.default_rng(1)
    tables = make_tables()
    updater = SparseUpdater(Adam(), tables.values())
    train_round(tables, updater, rng)
    checkpoint = save_tables(tmp_path / "ckpt-0", tables, metadata={"step": 0})
    previous = export_checkpoint(tmp_path / "base", checkpoint)
    assert previous.step == 0
    for round_ in range(1, 6):
        train_round(tables, updater, rng)
        checkpoint = save_tables(tmp_path / f"ckpt-{round_}", tables, metadata={"step": round_})
        delta = export_checkpoint(tmp_path / f"delta-{round_}", checkpoint, since=previous)
        full = export_checkpoint(tmp_path / f"full-{round_}", checkpoint)
        live = export_tables(tmp_path / f"live-{round_}", tables, step=round_)
        assert_same_state(delta, full)
        assert_same_state(live, full)  # a checkpoint exports what the live tables hold
        assert delta.rows()["clicks"].removed.size > 0
        previous = delta


def test_a_restored_table_gets_a_delta_by_comparison(tmp_path):
    rng = np.random.default_rng(2)
    tables = make_tables()
    updater = SparseUpdater(Adam(), tables.values())
    train_round(tables, updater, rng)
    base = export_tables(tmp_path / "base", tables)
    restored = make_tables()
    updater = SparseUpdater(Adam(), restored.values())  # adds the slots the state holds
    for name, table in restored.items():
        table.load_state_dict(tables[name].state_dict())
    train_round(restored, updater, rng)
    delta = export_tables(tmp_path / "delta", restored, since=base)
    assert_same_state(delta, export_tables(tmp_path / "full", restored))


def test_the_optimizer_slots_and_policy_state_stay_out(tmp_path):
    tables = make_tables()
    train_round(tables, SparseUpdater(Adam(), tables.values()), np.random.default_rng(3))
    bundle = export_tables(tmp_path / "b", tables, dtype="float16")
    with safe_open(bundle.file("rows.safetensors"), "numpy") as f:
        names = set(f.keys())
    assert {n.split("/")[1] for n in names} == {"id", "values", "removed"}
    assert bundle.rows()["user"].values.dtype == np.float16
    assert bundle.tables["clicks"]["dim"] == 3


def test_corrupt_or_mismatched_bundles_are_refused(tmp_path):
    tables = make_tables()
    train_round(tables, SparseUpdater(Adam(), tables.values()), np.random.default_rng(4))
    base = export_tables(tmp_path / "base", tables)
    with pytest.raises(ValueError, match="must use its dtype 'float32'"):
        export_tables(tmp_path / "d", tables, dtype="int8", since=base)
    with open(tmp_path / "base" / "rows.safetensors", "r+b") as f:
        f.seek(-3, 2)
        f.write(b"zzz")
    with pytest.raises(BundleError, match=r"rows\.safetensors.*corrupt"):
        Bundle(tmp_path / "base").rows()
    with pytest.raises(BundleError, match="not a serving bundle"):
        Bundle(tmp_path)

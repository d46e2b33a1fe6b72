"""Loading checkpoints into other groupings of tables, partial loads, and load plans."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from checkpoint_helpers import assert_same_state, by_id

from recis.checkpoint import (
    Checkpoint,
    CheckpointError,
    Source,
    load_tables,
    plan_load,
    save_tables,
)
from recis.core.dedupe import first_occurrences
from recis.core.initializers import NormalInitializer
from recis.core.optim import Adam
from recis.core.optim.updater import SparseUpdater
from recis.core.policies import CapacityEviction, FrequencyAdmission, GlobalStepEviction
from recis.core.table import EmbeddingTable

MERGED = {"user+2": ["user", "item", "query"]}
SPLIT = {"item": ["item"], "query+1": ["query", "user"]}


def make(layout, dim=4):
    tables = {
        name: EmbeddingTable(
            name,
            dim,
            NormalInitializer(std=0.1),
            seed=5,
            block_rows=16,
            children=children,
            admission=FrequencyAdmission(2),
            eviction=GlobalStepEviction(filter_step=2),
        )
        for name, children in layout.items()
    }
    return tables, SparseUpdater(Adam(), tables.values())


def train(tables, updater, steps):
    """Steps whose batches depend on the logical table only, not on the grouping."""
    for step in steps:
        for table in tables.values():
            for tag, child in enumerate(table.children):
                rng = np.random.default_rng([step, zlib.crc32(child.encode())])
                ids = rng.integers(0, 40, 16)
                first, inverse = first_occurrences(ids, tag)
                counts = np.bincount(inverse, minlength=first.size)
                rows = table.lookup(ids[first], tag, counts).rows
                grads = rng.standard_normal((rows.size, table.dim)).astype(np.float32)
                updater.accumulate(table, rows, grads)
            table.eviction.advance()
            table.evict_stale()
        updater.step(lr=0.05)


def logical_view(tables):
    """Per logical table: ids with their values and slots, and ids pending admission."""
    view = {}
    for table in tables.values():
        pending = table.admission.state()
        for tag, (child, rows) in enumerate(by_id(table).items()):
            mine = pending["tags"] == tag
            keys, counts = pending["keys"][mine].tolist(), pending["counts"][mine].tolist()
            waiting = dict(zip(keys, counts, strict=True))
            view[child] = (rows, waiting)
    return view


def test_regrouped_tables_keep_every_id_value_and_slot_and_train_on_identically(tmp_path):
    source, updater = make(MERGED)
    train(source, updater, range(5))
    path = save_tables(tmp_path / "ckpt", source)
    target, target_updater = make(SPLIT)
    checkpoint = Checkpoint(path)
    sources = load_tables(checkpoint, target, plan_load(checkpoint, target))
    assert sources == {"item": ["user+2"], "query+1": ["user+2"]}
    assert logical_view(target) == logical_view(source)
    assert all(t.eviction.step == source["user+2"].eviction.step for t in target.values())
    target_updater.steps = dict.fromkeys(target, updater.steps["user+2"])
    train(source, updater, range(5, 9))
    train(target, target_updater, range(5, 9))
    assert logical_view(target) == logical_view(source)


def test_loading_part_of_a_table_keeps_its_other_logical_tables(tmp_path):
    source, updater = make(MERGED)
    train(source, updater, range(4))
    checkpoint = Checkpoint(save_tables(tmp_path / "ckpt", source))
    target, target_updater = make(SPLIT)
    train(target, target_updater, range(10, 12))
    before = logical_view(target)
    plan = plan_load(checkpoint, target, exclude=["us*"])
    assert sorted(plan) == ["item", "query"]
    load_tables(checkpoint, target, plan)
    after, saved = logical_view(target), logical_view(source)
    assert after["user"] == before["user"]
    assert after["query"] == saved["query"] and after["item"] == saved["item"]


def test_a_table_can_load_from_another_logical_table(tmp_path):
    source, updater = make(MERGED)
    train(source, updater, range(3))
    checkpoint = Checkpoint(save_tables(tmp_path / "ckpt", source))
    target, _ = make({"item": ["item"]})
    load_tables(checkpoint, target, {"item": Source("query", ("embedding",))})
    saved = by_id(source["user+2"])["query"]
    loaded = by_id(target["item"])["item"]
    assert loaded.keys() == saved.keys()
    assert all(loaded[i][0] == saved[i][0] for i in saved)  # embedding copied
    assert all(loaded[i][2] == bytes(16) for i in saved)  # moments start at zero


def test_embedding_only_load_resets_optimizer_slots_in_the_same_layout(tmp_path):
    source, updater = make(MERGED)
    train(source, updater, range(4))
    checkpoint = Checkpoint(save_tables(tmp_path / "ckpt", source))
    target, _ = make(MERGED)
    plan = plan_load(checkpoint, target, kinds=("embedding", "policy"))
    assert plan["user"] == Source("user", ("embedding", "step_filter"))
    load_tables(checkpoint, target, plan)
    saved, loaded = source["user+2"].state_dict(), target["user+2"].state_dict()
    for key in ("id", "row", "embedding", "step_filter", "rows.free", "admission.keys"):
        np.testing.assert_array_equal(loaded[key], saved[key], err_msg=key)
    assert not loaded["exp_avg"].any() and saved["exp_avg"].any()


def test_same_layout_round_trip_is_exact(tmp_path):
    source, updater = make(MERGED)
    train(source, updater, range(4))
    checkpoint = Checkpoint(save_tables(tmp_path / "ckpt", source))
    target, _ = make(MERGED)
    load_tables(checkpoint, target, plan_load(checkpoint, target))
    assert_same_state(target["user+2"], source["user+2"])


def test_strict_plans_report_what_is_missing(tmp_path):
    source, _ = make({"user": ["user"]})
    checkpoint = Checkpoint(save_tables(tmp_path / "ckpt", source))
    target, _ = make({"user+1": ["user", "new"]})
    with pytest.raises(CheckpointError, match="has no table 'new'"):
        plan_load(checkpoint, target)
    assert plan_load(checkpoint, target, strict=False) == {
        "user": Source("user", ("embedding", "step_filter", "exp_avg", "exp_avg_sq"))
    }
    bare = {"user": EmbeddingTable("user", 4)}
    with pytest.raises(CheckpointError, match="table 'user' has 'step_filter', the table does not"):
        plan_load(checkpoint, bare)
    assert plan_load(checkpoint, bare, strict=False) == {"user": Source("user", ("embedding",))}


def test_field_shapes_and_plans_are_checked(tmp_path):
    source, _ = make({"user": ["user"]})
    checkpoint = Checkpoint(save_tables(tmp_path / "ckpt", source))
    wide, _ = make({"user": ["user"]}, dim=8)
    with pytest.raises(CheckpointError, match=r"'embedding' of table 'user' is float32\[4\]"):
        load_tables(checkpoint, wide, plan_load(checkpoint, wide))
    target, _ = make({"user": ["user"]})
    with pytest.raises(CheckpointError, match="no table given holds the planned table 'x'"):
        load_tables(checkpoint, target, {"x": Source("user", ())})
    with pytest.raises(CheckpointError, match="has no table 'y'"):
        load_tables(checkpoint, target, {"user": Source("y", ())})


def test_policy_state_of_the_same_layout_must_fit_unless_not_strict(tmp_path):
    source, _ = make({"user": ["user"]})
    train(source, SparseUpdater(Adam(), []), [])
    checkpoint = Checkpoint(save_tables(tmp_path / "ckpt", source))
    lru = {"user": EmbeddingTable("user", 4, eviction=CapacityEviction(max_size=9))}
    SparseUpdater(Adam(), lru.values())
    plan = {"user": Source("user", ("embedding",))}
    with pytest.raises(CheckpointError, match="fields this table lacks"):
        load_tables(checkpoint, lru, plan)
    load_tables(checkpoint, lru, plan, strict=False)

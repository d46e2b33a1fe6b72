"""TensorBoardHook: TensorBoard reads back metrics, throughput and hash-table statistics."""

from __future__ import annotations

import os

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from recis.hooks import HashTableFilterHook, TensorBoardHook, tensorboard_hook
from recis.nn import HashTable
from recis.nn.hashtable_hook import FilterHook


def read_scalars(directory) -> dict[str, list[tuple[int, float]]]:
    events = EventAccumulator(str(directory))
    events.Reload()
    return {
        tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]
    }


def test_metrics_rates_and_table_stats_are_read_back(tmp_path):
    stale_after_1 = FilterHook("GlobalStepFilter", {"filter_step": 1})
    table = HashTable([-1, 4], name="user", filter_hook=stale_after_1)
    table(torch.tensor([3, 5, 7]))
    evictor = HashTableFilterHook(filter_interval=1, tables=[table])
    hook = TensorBoardHook(str(tmp_path), every=2, tables=[table])
    hook.before_train()
    for step in range(1, 5):
        hook.after_step({"loss": 1.0 / step, "auc": 0.5, "batch_size": 128}, step)
        if step == 2:
            evictor.after_step(global_step=step)
            evictor.after_step(global_step=step)
    hook.after_evaluate({"loss": 0.7, "auc": 0.6})
    hook.end()
    scalars = read_scalars(tmp_path)
    assert scalars["train/loss"] == [(2, 0.5), (4, 0.25)]
    assert scalars["train/auc"] == [(2, 0.5), (4, 0.5)]
    assert [step for step, _ in scalars["train/samples_per_sec"]] == [2, 4]
    assert all(rate > 0 for _, rate in scalars["train/samples_per_sec"])
    assert "train/batch_size" not in scalars
    assert scalars["table/user/size"] == [(2, 3.0), (4, 0.0)]
    assert scalars["table/user/evicted"] == [(2, 0.0), (4, 3.0)]
    assert scalars["table/user/new"] == [(2, 3.0), (4, 3.0)]
    assert scalars["table/user/load_factor"][0][1] == pytest.approx(3 / 1024)
    held = 16 * 1024 + 16384 * (4 * 4 + 8)  # id map slots; rows of 4 floats and a step filter
    freed = 3 * 8  # evicted ids leave their rows (8 bytes each) in the free-row list
    stats = table.table.stats()
    assert stats["bytes"] == stats["tier_bytes"]["ram"] == held + freed
    expected = [(2, held), (4, held + freed)]
    assert scalars["table/user/bytes"] == scalars["table/user/bytes/ram"] == expected
    assert scalars["table/user/bytes_per_id"][0] == (2, pytest.approx(held / 3))
    assert scalars["table/user/id_map_bytes"][0] == (2, 16 * 1024)
    assert scalars["eval/auc"] == [(4, pytest.approx(0.6))]


def test_steps_per_sec_without_batch_size_and_nothing_off_rank_zero(tmp_path, monkeypatch):
    hook = TensorBoardHook(str(tmp_path / "zero"), tables=[])
    for step in range(1, 4):
        hook.after_step({"loss": 1.0}, step)
    hook.end()
    assert "train/steps_per_sec" in read_scalars(tmp_path / "zero")
    monkeypatch.setattr(tensorboard_hook, "is_rank_zero", lambda: False)
    silent = TensorBoardHook(str(tmp_path / "other"), tables=[])
    silent.after_step({"loss": 1.0}, 1)
    silent.end()
    assert not os.path.exists(tmp_path / "other")

"""Exports from a running trainer: the caller waits only for the snapshot, training goes on while
the files are written, and the written bundle holds the state of the snapshot's moment."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from test_deltas import assert_same_state, make_tables, train_round
from test_torch_serving import batches, evaluation_scores, trained

from recis.backends.torch.export import start_export_model
from recis.core.optim import Adam
from recis.core.optim.updater import SparseUpdater
from recis.export import export_tables, start_export
from recis.serving import Predictor
from recis.tools.synthetic import write_dataset


def test_tables_train_while_a_delta_is_written_and_it_holds_the_snapshot(tmp_path):
    rng = np.random.default_rng(5)
    tables = make_tables()
    updater = SparseUpdater(Adam(), tables.values())
    train_round(tables, updater, rng)
    base = start_export(tmp_path / "base", tables, step=1)
    train_round(tables, updater, rng)
    trained_meanwhile = threading.Event()

    def held_back(out):  # the delta's writing waits until training went on
        assert trained_meanwhile.wait(60)
        out.write(b"x")

    delta = start_export(tmp_path / "delta", tables, step=2, since=base, files={"x": held_back})
    full = start_export(tmp_path / "full", tables, step=2)  # the same moment, written whole
    before = {n: t.state_dict()["embedding"].copy() for n, t in tables.items()}
    train_round(tables, updater, rng)
    assert not delta.done()
    assert any(
        not np.array_equal(before[n], t.state_dict()["embedding"]) for n, t in tables.items()
    )
    trained_meanwhile.set()
    assert_same_state(delta.result(timeout=60), full.result(timeout=60))
    assert delta.result().step == 2 and delta.snapshot_seconds > 0
    later = export_tables(tmp_path / "later", tables, step=3, since=delta)  # chains on
    assert_same_state(later, export_tables(tmp_path / "later-full", tables, step=3))


def test_a_failed_write_fails_the_deltas_that_follow_it(tmp_path):
    tables = make_tables()
    train_round(tables, SparseUpdater(Adam(), tables.values()), np.random.default_rng(6))

    def broken(out):
        raise OSError("disk full on purpose")

    base = start_export(tmp_path / "base", tables, files={"x": broken})
    delta = start_export(tmp_path / "delta", tables, since=base)
    with pytest.raises(OSError, match="disk full on purpose"):
        base.result(timeout=60)
    with pytest.raises(OSError, match="disk full on purpose"):
        delta.result(timeout=60)
    assert not (tmp_path / "base").exists() and not (tmp_path / "delta").exists()
    with pytest.raises(ValueError, match="must use its dtype 'float32'"):
        start_export(tmp_path / "d", tables, dtype="int8", since=base)


def test_a_torch_model_trains_while_its_delta_is_traced_and_written(tmp_path):
    data = _data(tmp_path)
    model, trainer = trained(tmp_path, data, 0)
    for batch in data["train"][:3]:
        trainer.run_step(batch)
    base = start_export_model(model, tmp_path / "base", data["train"][0], step=3)
    for batch in data["train"][3:6]:
        trainer.run_step(batch)
    expected = evaluation_scores(model, trainer, data["eval_torch"])
    weights = [p.detach().clone() for p in model.parameters()]
    delta = start_export_model(model, tmp_path / "delta", data["train"][0], step=6, since=base)
    for batch in data["train"][6:]:
        trainer.run_step(batch)  # while the delta is traced and written
    assert any(not torch.equal(w, p) for w, p in zip(weights, model.parameters(), strict=True))
    assert delta.snapshot_seconds > 0
    predictor = Predictor(base.result(timeout=120), deltas=[delta.result(timeout=120)])
    assert predictor.step == 6
    for raw, want in zip(data["eval_numpy"], expected, strict=True):
        np.testing.assert_array_equal(predictor.predict(raw), want)


def _data(tmp_path):
    write_dataset(str(tmp_path / "train"), rows=640, files=1, seed=1)
    write_dataset(str(tmp_path / "eval"), rows=128, files=1, seed=2)
    return {
        "train": batches(tmp_path / "train", "torch"),
        "eval_torch": batches(tmp_path / "eval", "torch"),
        "eval_numpy": batches(tmp_path / "eval", "numpy"),
    }


def test_a_delta_of_a_missing_bundle_is_refused_before_any_row_is_copied(tmp_path):
    tables = make_tables()
    train_round(tables, SparseUpdater(Adam(), tables.values()), np.random.default_rng(7))
    with pytest.raises(ValueError, match=r"cannot follow '.*nowhere'.*not a serving bundle"):
        start_export(tmp_path / "delta", tables, since=tmp_path / "nowhere")
    assert all(table.changes is None for table in tables.values())  # no change log started

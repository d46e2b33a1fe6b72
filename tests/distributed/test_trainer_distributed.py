"""The Trainer on several gloo ranks: uneven data ends cleanly, losses are averaged over ranks,
and a failing or stalled rank ends the whole job with an error that names it."""

from __future__ import annotations

import os
import signal
import time

import pytest
import ranks_trainer
from launch import collect, run_ranks, start_ranks

STARTUP = 60  # seconds the ranks may take to start and reach the second step


def test_uneven_data_stops_every_rank_together_and_losses_are_averaged(tmp_path):
    results = run_ranks(2, "ranks_trainer:uneven", str(tmp_path))
    assert [r["step"] for r in results] == [3, 3]  # rank 1's fourth batch is not trained on
    assert len(results[0]["losses"]) == 3
    assert results[0]["losses"] == results[1]["losses"]  # the mean over ranks, on every rank
    first = [ranks_trainer.local_loss(rank, 2, 1)[0] for rank in range(2)]
    assert results[0]["losses"][0] == pytest.approx(sum(first) / 2, rel=1e-6)
    assert [r["eval_steps"] for r in results] == [3, 3]
    assert results[0]["eval_loss"] == pytest.approx(results[1]["eval_loss"])


def test_a_failing_rank_ends_every_rank_with_its_error(tmp_path):
    start = time.monotonic()
    processes, out = start_ranks(2, "ranks_trainer:failing", str(tmp_path))
    results = collect(processes, out, timeout=60)
    assert time.monotonic() - start < 60
    assert all(r.returncode != 0 for r in results)
    assert "ValueError: bad batch on purpose" in results[1].stderr
    assert "rank 1 raised ValueError: bad batch on purpose" in results[0].stderr
    assert "CollectiveError" in results[0].stderr


def test_a_stalled_rank_times_out_naming_the_collective_and_tables(tmp_path, monkeypatch):
    monkeypatch.setitem(os.environ, "RECIS_COLLECTIVE_TIMEOUT", "3")
    processes, out = start_ranks(2, "ranks_trainer:failing", str(tmp_path), 8.0)
    results = collect(processes, out, timeout=60)
    assert results[0].returncode != 0
    assert "CollectiveError" in results[0].stderr
    assert "of tables ['item+1', 'tag'] failed on rank 0 (timeout 3 s)" in results[0].stderr


@pytest.mark.parametrize("sig", [signal.SIGSTOP, signal.SIGKILL], ids=["frozen", "killed"])
def test_a_frozen_or_dead_rank_ends_the_others_promptly_naming_it(tmp_path, monkeypatch, sig):
    timeout, shutdown = 2, 10
    monkeypatch.setitem(os.environ, "RECIS_COLLECTIVE_TIMEOUT", str(timeout))
    processes, _ = start_ranks(2, "ranks_trainer:signalled", str(tmp_path), int(sig), timeout=60)
    try:
        _, stderr = processes[0].communicate(timeout=STARTUP + timeout + shutdown)
        ended = time.time()
    finally:
        for process in processes:
            process.kill()
            process.wait()
    assert processes[0].returncode != 0
    assert "CollectiveError" in stderr
    assert "rank 1 did not respond" in stderr, stderr[-3000:]
    assert ended - float((tmp_path / "signalled-at").read_text()) < timeout + shutdown

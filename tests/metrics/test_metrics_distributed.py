"""Metrics over two gloo ranks equal the metrics of all the data in one process."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from metric_helpers import random_batch, run_groups, sklearn_gauc
from sklearn.metrics import roc_auc_score

from recis.framework import auc as core
from recis.metrics import AUROC, Gauc

WORLD = 2
BATCHES = 3
TIMEOUT_SECONDS = 60


def rank_data(rank: int):
    """Each rank's batches: predictions, labels and user ids (users differ between ranks)."""
    rng = np.random.default_rng(rank)
    indicators = np.repeat(rng.integers(0, 50, 30), rng.integers(1, 10, 30)) + 100 * rank
    predictions, labels = random_batch(rng, indicators.size)
    return predictions, labels, indicators


def batches(rank: int):
    return [np.array_split(x, BATCHES) for x in rank_data(rank)]


def check_on_rank(rank: int, init_file: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        everything = [np.concatenate(x) for x in zip(*map(rank_data, range(WORLD)), strict=True)]
        all_predictions, all_labels, _ = everything
        threshold, exact = AUROC(dist_sync_on_step=True), AUROC(mode="exact")
        gauc = Gauc(span_batches=True)
        for step, (predictions, labels, indicators) in enumerate(zip(*batches(rank), strict=True)):
            batch_value = threshold(torch.tensor(predictions), torch.tensor(labels)).item()
            step_data = [[x[step] for x in batches(r)] for r in range(WORLD)]
            step_predictions = np.concatenate([d[0] for d in step_data])
            step_labels = np.concatenate([d[1] for d in step_data])
            counts = core.confusion_counts(step_predictions, step_labels, threshold._thresholds)
            assert batch_value == pytest.approx(core.threshold_auc(counts), abs=1e-6)
            exact.update(torch.tensor(predictions), torch.tensor(labels))
            gauc(torch.tensor(labels), torch.tensor(predictions), torch.tensor(indicators))
        counts = core.confusion_counts(all_predictions, all_labels, threshold._thresholds)
        assert threshold.compute().item() == pytest.approx(core.threshold_auc(counts), abs=1e-6)
        assert exact.compute().item() == pytest.approx(
            roc_auc_score(all_labels, all_predictions), abs=1e-6
        )
        groups = [run_groups(rank_data(r)[2]) for r in range(WORLD)]
        offset = rank_data(0)[2].size
        runs = groups[0] + [(s + offset, e + offset) for s, e in groups[1]]
        expected = sklearn_gauc(all_predictions, all_labels, runs)
        assert gauc.compute() == pytest.approx(expected)
        local_counts = int(threshold.tp[0] + threshold.fn[0])
        assert local_counts == int(rank_data(rank)[1].sum())  # the state stays per rank
    finally:
        dist.destroy_process_group()


def test_two_ranks_equal_one_process(tmp_path):
    # spawn, not fork: the test process may already run OpenMP or JAX threads, which a fork
    # would copy in an undefined state
    init_file = str(tmp_path / "init")
    ranks = mp.start_processes(
        check_on_rank, args=(init_file,), nprocs=WORLD, join=False, start_method="spawn"
    )
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while not ranks.join(timeout=1):  # raises when a rank failed
        if time.monotonic() > deadline:
            for process in ranks.processes:
                process.kill()
            pytest.fail(f"the ranks did not finish within {TIMEOUT_SECONDS} s")

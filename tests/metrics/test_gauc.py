"""Torch ``Gauc``: RecIS's per-batch, click-weighted groups, and with ``span_batches`` every
group counted once across random batches (both against sklearn)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from metric_helpers import random_batch, random_spans, run_groups, sklearn_gauc

from recis.metrics import Gauc


def test_recis_per_batch_groups_weighted_by_clicks():
    gauc = Gauc()
    labels = torch.tensor([1, 0, 0, 0, 1], dtype=torch.float32)
    predictions = torch.tensor([0.6, 0.4, 0.55, 0.45, 0.5])
    assert gauc(labels, predictions, torch.tensor([0, 0, 1, 1, 1])) == (0.75, 0.75)
    # a group of the next batch with the same indicator is another group: AUC 1, 2 clicks
    batch = gauc(torch.tensor([1, 1, 0]), torch.tensor([0.9, 0.8, 0.1]), torch.tensor([1, 1, 1]))
    assert batch == (1.0, (1.0 + 0.5 + 2 * 1.0) / 4)
    assert gauc.compute() == 0.875


@pytest.mark.parametrize("seed", range(3))
def test_recis_gauc_equals_sklearn_weighted_by_clicks(seed):
    rng = np.random.default_rng(seed)
    indicators = np.repeat(rng.integers(0, 1000, 40), rng.integers(1, 12, 40))
    predictions, labels = random_batch(rng, indicators.size)
    gauc, batch_runs = Gauc(), []
    for start, end in random_spans(rng, indicators.size, 5):
        batch, cumulative = gauc(
            torch.tensor(labels[start:end]),
            torch.tensor(predictions[start:end]),
            torch.tensor(indicators[start:end]),
        )
        runs = [(start + a, start + b) for a, b in run_groups(indicators[start:end])]
        expected = sklearn_gauc(predictions, labels, runs, by_clicks=True)
        assert batch == pytest.approx(expected, nan_ok=True)
        batch_runs += runs
    expected = sklearn_gauc(predictions, labels, batch_runs, by_clicks=True)
    assert cumulative == pytest.approx(expected) and gauc.compute() == pytest.approx(expected)


def test_spanning_groups_counts_only_completed_groups():
    gauc = Gauc(span_batches=True)
    labels = torch.tensor([1, 0, 1, 0, 1])
    predictions = torch.tensor([0.3, 0.1, 0.5, 0.9, 0.2])
    batch, cumulative = gauc(labels, predictions, torch.tensor([0, 1, 1, 1, 2]))
    assert (batch, cumulative) == (0.5, 0.5)  # group 0 has one class, group 2 is still open


@pytest.mark.parametrize("seed", range(4))
def test_streamed_gauc_equals_sklearn_over_all_groups(seed):
    rng = np.random.default_rng(seed)
    indicators = np.repeat(rng.integers(0, 1000, 50), rng.integers(1, 15, 50))
    predictions, labels = random_batch(rng, indicators.size)
    clicks = np.stack([1 - labels, labels], axis=1).astype(np.float32)  # [N, 2] labels
    gauc = Gauc(span_batches=True)
    for start, end in random_spans(rng, indicators.size, 8):
        tensors = (clicks[start:end], predictions[start:end], indicators[start:end])
        batch, cumulative = gauc(*(torch.from_numpy(x) for x in tensors))
        assert math.isnan(batch) or 0 <= batch <= 1
    runs = run_groups(indicators)
    expected_done = sklearn_gauc(predictions, labels, runs[:-1])
    assert cumulative == pytest.approx(expected_done)
    assert gauc.compute() == pytest.approx(sklearn_gauc(predictions, labels, runs))
    gauc.reset()
    assert math.isnan(gauc.compute())


@pytest.mark.parametrize("span_batches", [False, True])
def test_update_then_compute_equals_forward(span_batches):
    rng = np.random.default_rng(7)
    indicators = np.repeat(np.arange(20), 5)
    predictions, labels = random_batch(rng, 100)
    by_forward, by_update = Gauc(span_batches), Gauc(span_batches)
    for piece in np.array_split(np.arange(100), 3):
        args = (torch.tensor(labels[piece]), torch.tensor(predictions[piece]), indicators[piece])
        by_forward(*args)
        by_update.update(*args)
    assert by_update.compute() == by_forward.compute()
    assert by_update.state_dict() == {}

"""Torch ``Gauc``: RecIS's example, every group counted across random batches (vs sklearn)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from metric_helpers import random_batch, random_spans, run_groups, sklearn_gauc

from recis.metrics import Gauc


def test_recis_example_counts_only_completed_groups():
    gauc = Gauc()
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
    gauc = Gauc()
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


def test_update_then_compute_equals_forward():
    rng = np.random.default_rng(7)
    indicators = np.repeat(np.arange(20), 5)
    predictions, labels = random_batch(rng, 100)
    by_forward, by_update = Gauc(), Gauc()
    for piece in np.array_split(np.arange(100), 3):
        args = (torch.tensor(labels[piece]), torch.tensor(predictions[piece]), indicators[piece])
        by_forward(*args)
        by_update.update(*args)
    assert by_update.compute() == by_forward.compute()
    assert by_update.state_dict() == {}

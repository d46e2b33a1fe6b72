"""The threshold AUC on torch tensors (what ``AUROC`` runs for GPU predictions) against the NumPy
math of ``recis.framework.auc``, on the CPU; the GPU runs it in ``tests/gpu``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recis.backends.torch.metrics import device_auc
from recis.framework import auc as core


@pytest.mark.parametrize("seed", range(5))
def test_counts_and_area_equal_the_numpy_ones(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 500))
    predictions = rng.random(n).astype([np.float32, np.float64][seed % 2])
    predictions[: n // 10] = rng.choice([0.0, 1.0, 0.5], n // 10)  # on the thresholds
    labels = rng.integers(0, 2, n)
    if seed % 3 == 0:  # [N, 2] (non-click, click) labels
        labels = np.stack([1 - labels, labels], 1)
    thresholds = core.auc_thresholds(int(rng.integers(3, 300)))
    want = core.confusion_counts(predictions, labels, thresholds)
    got, invalid = device_auc.confusion_counts(
        torch.from_numpy(predictions), torch.from_numpy(labels), torch.from_numpy(thresholds)
    )
    np.testing.assert_array_equal(got.numpy(), want)
    assert int(invalid) == 0
    area = device_auc.threshold_auc(got, invalid)
    assert area.dtype == torch.float64
    np.testing.assert_allclose(float(area), core.threshold_auc(want), rtol=1e-12)


def test_bad_predictions_are_counted_and_make_the_area_nan():
    predictions = torch.tensor([0.2, float("nan"), 1.5, -0.1, 0.9])
    labels = torch.tensor([0, 1, 1, 0, 1], dtype=torch.bool)
    counts, invalid = device_auc.confusion_counts(predictions, labels, torch.linspace(0, 1, 4))
    assert int(invalid) == 3
    kept = core.confusion_counts(np.array([0.2, 0.9]), np.array([0, 1]), np.linspace(0, 1, 4))
    np.testing.assert_array_equal(counts.numpy(), kept)
    assert torch.isnan(device_auc.threshold_auc(counts, invalid))
    with pytest.raises(ValueError, match=r"predictions \(5\) and labels \(2\) differ"):
        device_auc.confusion_counts(predictions, labels[:2], torch.linspace(0, 1, 4))
    with pytest.raises(TypeError, match="floating point"):
        device_auc.confusion_counts(labels, labels, torch.linspace(0, 1, 4))

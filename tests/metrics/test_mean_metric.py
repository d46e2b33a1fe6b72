"""MeanMetric: running weighted means against NumPy, broadcasting, reset and errors."""

import numpy as np
import pytest
import torch

from recis.metrics.mean import MeanMetric


def test_running_weighted_mean_equals_numpy_average_of_everything_added():
    rng = np.random.default_rng(0)
    metric, xs, ws = MeanMetric(dtype=torch.float64), [], []
    for n in (3, 1, 5):
        x, w = rng.standard_normal(n), rng.random(n)
        metric.update(torch.tensor(x), w.tolist())
        xs.append(x)
        ws.append(w)
    assert metric.compute().dtype == torch.float64
    assert metric.compute().item() == pytest.approx(
        np.average(np.concatenate(xs), weights=np.concatenate(ws))
    )


def test_scalars_broadcast_weights_reset_and_empty():
    metric = MeanMetric()
    assert metric.compute().item() == 0.0
    metric.update(torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([1.0, 2.0]))
    assert metric.compute().item() == pytest.approx(16 / 6)
    metric.reset()
    assert metric(5.0).item() == 5.0 and metric(10.0, weights=3.0).item() == pytest.approx(8.75)
    with pytest.raises(ValueError, match="do not broadcast"):
        metric.update([1.0, 2.0], weights=[1.0, 2.0, 3.0])

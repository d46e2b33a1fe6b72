"""The global metrics channel and scalar extraction of metrics dicts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recis.framework.metrics import (
    add_metric,
    clear_global_metrics,
    get_global_metrics,
    scalar_metrics,
)


def test_add_get_clear():
    clear_global_metrics()
    add_metric("auc", torch.tensor(0.7))
    add_metric("auc", 0.8)  # overwritten
    add_metric("ctr", 0.1)
    metrics = get_global_metrics()
    assert metrics == {"auc": 0.8, "ctr": 0.1}
    metrics["other"] = 1  # a copy
    assert "other" not in get_global_metrics()
    clear_global_metrics()
    assert get_global_metrics() == {}
    with pytest.raises(TypeError, match="name"):
        add_metric(3, 0.5)


def test_scalar_metrics_keeps_single_numbers_of_any_kind():
    metrics = {
        "loss": torch.tensor(0.25),
        "one": torch.tensor([1.5], dtype=torch.bfloat16),
        "np": np.float32(2.0),
        "array": np.array([[3.0]]),
        "int": 4,
        "flag": True,
        "vector": torch.ones(2),
        "name": "run",
        "none": None,
    }
    assert scalar_metrics(metrics) == {
        "loss": 0.25,
        "one": 1.5,
        "np": 2.0,
        "array": 3.0,
        "int": 4.0,
        "flag": 1.0,
    }
    assert scalar_metrics(None) == {}

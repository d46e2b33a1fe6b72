"""RecIS's import path for :mod:`recis.backends.torch.metrics.mean`."""

from recis.backends.torch.metrics.mean import MeanMetric

__all__ = ["MeanMetric"]

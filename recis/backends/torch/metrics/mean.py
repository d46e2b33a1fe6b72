"""``MeanMetric``: a running (weighted) mean of values over many updates (RecIS API).

Values and weights may be tensors, lists or numbers; weights broadcast to the values' shape
and default to 1. The sums are kept on the CPU in ``dtype``; :meth:`MeanMetric.compute` is 0
before any weight has been added.

>>> metric = MeanMetric()
>>> metric.update([1.0, 2.0, 3.0])
>>> metric([4.0, 5.0], weights=[0.5, 1.5])
tensor(3.1000)
"""

from __future__ import annotations

import torch


class MeanMetric:
    """Running ``Σ w·x / Σ w`` (see the module docstring)."""

    def __init__(self, dtype: torch.dtype = torch.float32) -> None:
        self.dtype = dtype
        self.reset()

    def reset(self) -> None:
        """Forget all values."""
        self.total = torch.tensor(0.0, dtype=self.dtype)
        self.count = torch.tensor(0.0, dtype=self.dtype)

    def update(self, values, weights=None) -> None:
        """Add ``values`` with their ``weights`` (broadcast to the values' shape)."""
        values = self._tensor(values)
        weights = torch.ones_like(values) if weights is None else self._tensor(weights)
        try:
            weights = torch.broadcast_to(weights, values.shape)
        except RuntimeError as error:
            raise ValueError(
                f"MeanMetric: weights {tuple(weights.shape)} do not broadcast to values "
                f"{tuple(values.shape)}"
            ) from error
        self.total += (values * weights).sum()
        self.count += weights.sum()

    def compute(self) -> torch.Tensor:
        """The weighted mean so far (0 when nothing was added)."""
        if self.count == 0:
            return torch.tensor(0.0, dtype=self.dtype)
        return self.total / self.count

    def __call__(self, values, weights=None) -> torch.Tensor:
        """:meth:`update`, then :meth:`compute`."""
        self.update(values, weights)
        return self.compute()

    def _tensor(self, x) -> torch.Tensor:
        if isinstance(x, torch.Tensor):
            return x.detach().to(device="cpu", dtype=self.dtype)
        return torch.tensor(x, dtype=self.dtype)

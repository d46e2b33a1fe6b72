"""``Gauc``: group AUC, the size-weighted mean of per-group AUCs (RecIS API).

A group is a contiguous run of equal ``indicators`` (e.g. user ids; the data must be grouped by
them). Each group's AUC is exact (ties count one half); groups with only positive or only
negative labels are skipped; groups are weighted by their number of samples. Unlike RecIS,
every group is counted, the first and the last of a batch included: the last group of a batch
stays open and is continued by the next batch when that batch starts with the same indicator.
So the batch value counts the groups *completed* by a batch (the open group of the previous
batch among them), and :meth:`Gauc.compute` counts the open group as it stands.

Labels and predictions are ``[N]`` or ``[N, 2]`` (non-click, click); a label above 0.5 is a
click. Under torch.distributed with several ranks the sums are added over the ranks: ``forward``
and ``compute`` are collectives that every rank must call. The state is not part of the
``state_dict`` (as in RecIS).

>>> import torch
>>> gauc = Gauc()
>>> labels, predictions = torch.tensor([1, 0, 1, 0, 1]), torch.tensor([0.3, 0.1, 0.5, 0.9, 0.2])
>>> gauc(labels, predictions, torch.tensor([0, 1, 1, 1, 2]))  # group 0: one class; 2: open
(0.5, 0.5)
>>> gauc(torch.tensor([0]), torch.tensor([0.1]), torch.tensor([2]))  # group 2 goes on
(nan, 0.5)
>>> round(gauc.compute(), 4)  # (0.5 * 3 + 1.0 * 2) / 5
0.7
"""

from __future__ import annotations

import numpy as np
from torch import nn

from recis.backends.torch.metrics.distributed import all_reduce_sum
from recis.backends.torch.metrics.tensors import host_array
from recis.framework.auc import GaucAccumulator, WeightedAuc


class Gauc(nn.Module):
    """Streaming group AUC (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self._groups = GaucAccumulator()

    def forward(self, labels, predictions, indicators) -> tuple[float, float]:
        """Add a batch; return (GAUC of the groups it completed, GAUC of all completed groups)."""
        batch = self._add(labels, predictions, indicators)
        batch, total = summed_over_ranks(batch, self._groups.total)
        return batch.value, total.value

    def update(self, labels, predictions, indicators) -> None:
        """Add a batch (same arguments as ``forward``)."""
        self._add(labels, predictions, indicators)

    def compute(self) -> float:
        """GAUC of everything seen on all ranks, each rank's open group included."""
        (total,) = summed_over_ranks(self._groups.total + self._groups.open_group())
        return total.value

    def reset(self) -> None:
        """Forget everything, the open group included."""
        self._groups.reset()

    def _add(self, labels, predictions, indicators) -> WeightedAuc:
        arrays = (host_array(x) for x in (predictions, labels, indicators))
        return self._groups.update(*arrays)


def summed_over_ranks(*sums: WeightedAuc) -> list[WeightedAuc]:
    """Each weighted sum added over all ranks."""
    flat = np.array([[s.auc_sum, s.weight] for s in sums], np.float64)
    return [WeightedAuc(float(a), round(w)) for a, w in all_reduce_sum(flat)]

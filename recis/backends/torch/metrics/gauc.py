"""``Gauc``: group AUC, a weighted mean of per-group AUCs (RecIS API).

A group is a contiguous run of equal ``indicators`` (e.g. user ids; the data must be grouped by
them). Each group's AUC is exact (ties count one half); groups with only positive or only
negative labels are skipped.

By default the metric is RecIS's: each batch's groups end with the batch, and each group's AUC
is weighted by its clicks. ``forward`` returns (GAUC of the batch, GAUC of all batches so far).

With ``span_batches=True`` every group is counted once even when a batch boundary splits it: the
last group of a batch stays open and is continued by the next batch when that starts with the
same indicator, and groups are weighted by their number of samples (as scikit-learn's per-group
AUCs averaged by size). The batch value then counts the groups a batch *completed*, and
:meth:`Gauc.compute` counts the open group as it stands.

Labels and predictions are ``[N]`` or ``[N, 2]`` (non-click, click); a label above 0.5 is a
click. Under torch.distributed with several ranks the sums are added over the ranks: ``forward``
and ``compute`` are collectives that every rank must call. The state is not part of the
``state_dict`` (as in RecIS).

>>> import torch
>>> labels, predictions = torch.tensor([1, 0, 0, 0, 1]), torch.tensor([0.6, 0.4, 0.55, 0.45, 0.5])
>>> Gauc()(labels, predictions, torch.tensor([0, 0, 1, 1, 1]))  # AUCs 1 and 0.5, a click each
(0.75, 0.75)
>>> gauc = Gauc(span_batches=True)
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
from recis.framework.click_gauc import batch_click_gauc


class Gauc(nn.Module):
    """Streaming group AUC (see the module docstring).

    Args:
        span_batches: groups may span batches and weigh by their size (default: RecIS's
            per-batch groups weighted by clicks).
    """

    def __init__(self, span_batches: bool = False) -> None:
        super().__init__()
        self.span_batches = span_batches
        self._groups = GaucAccumulator()
        self._clicks_total = WeightedAuc()

    def forward(self, labels, predictions, indicators) -> tuple[float, float]:
        """Add a batch; return (GAUC of the groups it completed, GAUC of all completed groups)."""
        batch = self._add(labels, predictions, indicators)
        batch, total = summed_over_ranks(batch, self._total())
        return batch.value, total.value

    def update(self, labels, predictions, indicators) -> None:
        """Add a batch (same arguments as ``forward``)."""
        self._add(labels, predictions, indicators)

    def compute(self) -> float:
        """GAUC of everything seen on all ranks (with ``span_batches``, each rank's open group
        included)."""
        open_group = self._groups.open_group() if self.span_batches else WeightedAuc()
        (total,) = summed_over_ranks(self._total() + open_group)
        return total.value

    def reset(self) -> None:
        """Forget everything, the open group included."""
        self._groups.reset()
        self._clicks_total = WeightedAuc()

    def _total(self) -> WeightedAuc:
        return self._groups.total if self.span_batches else self._clicks_total

    def _add(self, labels, predictions, indicators) -> WeightedAuc:
        arrays = [host_array(x) for x in (predictions, labels, indicators)]
        if self.span_batches:
            return self._groups.update(*arrays)
        batch = batch_click_gauc(*arrays)
        self._clicks_total += batch
        return batch


def summed_over_ranks(*sums: WeightedAuc) -> list[WeightedAuc]:
    """Each weighted sum added over all ranks."""
    flat = np.array([[s.auc_sum, s.weight] for s in sums], np.float64)
    return [WeightedAuc(float(a), round(w)) for a, w in all_reduce_sum(flat)]

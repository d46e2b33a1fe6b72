"""``AUROC``: streaming area under the ROC curve (RecIS API).

Two modes:

- ``"threshold"`` (default, RecIS's): confusion counts at ``num_thresholds`` fixed thresholds
  ``{-1e-7, i/(n-1) for i = 1..n-2, 1+1e-7}``, a prediction counting as positive when it is
  above the threshold; the area is the trapezoidal rule over TPR = (tp+1e-6)/(tp+fn+1e-6) and
  FPR = fp/(fp+tn+1e-6). Predictions must lie in [0, 1]. The counts ``tp``, ``fp``, ``tn``,
  ``fn`` are non-trainable int64 parameters, as in RecIS: they are saved with the model's
  ``state_dict``, and DDP leaves each rank's own (it would overwrite buffers with rank 0's).
- ``"exact"``: the rank AUC over every sample seen, ties counting one half (equal to
  ``sklearn.metrics.roc_auc_score``); predictions may be any real scores. It keeps every score
  (5 bytes a sample for float32 predictions) and ``compute()`` costs time linear in the samples
  seen; these scores are not part of the ``state_dict``.

Labels and predictions are ``[N]`` or ``[N, 2]`` (non-click, click); a label above 0.5 is a
click. :meth:`AUROC.forward` returns the batch's AUC *and* accumulates the batch (RecIS's forward
only returns it), so do not also call :meth:`AUROC.update` with the same batch.

Predictions on a GPU (threshold mode) are counted there
(:mod:`~recis.backends.torch.metrics.device_auc`), and
``forward`` and ``compute`` return tensors on it, so that a step reporting its AUC never waits
for the GPU. Bad predictions (NaN, outside [0, 1]) are then not refused but make the AUC NaN.

Under torch.distributed with several ranks, each rank accumulates its own batches and
:meth:`AUROC.compute` sums the counts (gathers the scores) of all ranks: a collective that every
rank must call. With ``dist_sync_on_step`` the batch value of ``forward`` is over all ranks'
batches too (again a collective).

>>> auc = AUROC(num_thresholds=200)
>>> batch = auc(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1]))
>>> round(batch.item(), 4), sorted(auc.state_dict())
(0.75, ['fn', 'fp', 'tn', 'tp'])
>>> auc.update(torch.tensor([0.9, 0.2]), torch.tensor([[0, 1], [1, 0]]))  # [N, 2] labels
>>> round(auc.compute().item(), 4)  # 8 of the 9 (positive, negative) pairs in order
0.8889
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from recis.backends.torch.metrics import device_auc
from recis.backends.torch.metrics.distributed import all_gather, all_reduce_sum, is_distributed
from recis.backends.torch.metrics.tensors import host_array
from recis.framework import auc as core

MODES = ("threshold", "exact")
COUNT_NAMES = ("tp", "fp", "tn", "fn")


class AUROC(nn.Module):
    """Streaming AUC (see the module docstring).

    Args:
        num_thresholds: thresholds of the ``"threshold"`` mode (at least 3).
        dist_sync_on_step: make the batch value of ``forward`` cover all ranks.
        mode: ``"threshold"`` or ``"exact"``.
    """

    def __init__(
        self, num_thresholds: int = 200, dist_sync_on_step: bool = False, mode: str = "threshold"
    ) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.num_thresholds = num_thresholds
        self.dist_sync_on_step = dist_sync_on_step
        self.mode = mode
        if mode == "exact":
            self._samples = core.ExactAucAccumulator()
            return
        self._thresholds = core.auc_thresholds(num_thresholds)
        for name in COUNT_NAMES:
            zeros = torch.zeros(num_thresholds, dtype=torch.int64)
            setattr(self, name, nn.Parameter(zeros, requires_grad=False))
        self.register_buffer("invalid", torch.zeros((), dtype=torch.int64), persistent=False)
        thresholds = torch.from_numpy(self._thresholds)  # moves with the module, copied once
        self.register_buffer("_device_thresholds", thresholds, persistent=False)

    @property
    def thresholds(self) -> torch.Tensor:
        """The thresholds of the ``"threshold"`` mode (float32)."""
        return torch.from_numpy(self._thresholds)

    def forward(self, predictions, labels) -> torch.Tensor:
        """Accumulate the batch and return its AUC (float32 scalar on the predictions' device)."""
        if self._on_device(predictions):
            counts, invalid = self._device_counts(predictions, labels)
            if self.dist_sync_on_step:
                counts, invalid = all_reduce_sum(counts), all_reduce_sum(invalid)
            return device_auc.threshold_auc(counts, invalid).float()
        batch = self._batch_state(predictions, labels)
        self._accumulate(batch)
        if self.dist_sync_on_step:
            batch = self._sum_over_ranks(batch)
        device = predictions.device if isinstance(predictions, torch.Tensor) else "cpu"
        return torch.tensor(self._auc_of(batch), dtype=torch.float32, device=device)

    def update(self, predictions, labels) -> None:
        """Accumulate a batch."""
        if self._on_device(predictions):
            self._device_counts(predictions, labels)
            return
        self._accumulate(self._batch_state(predictions, labels))

    def compute(self) -> torch.Tensor:
        """AUC of everything accumulated on all ranks (float32 scalar)."""
        if self.mode == "threshold" and self.tp.device.type != "cpu":
            counts = torch.stack([getattr(self, n).detach() for n in COUNT_NAMES])
            invalid = all_reduce_sum(self.invalid.clone())
            return device_auc.threshold_auc(all_reduce_sum(counts), invalid).float()
        if self.mode == "exact":
            state, device = self._samples.samples(), "cpu"
        else:
            state, device = self._counts(), self.tp.device
        value = self._auc_of(self._sum_over_ranks(state))
        return torch.tensor(value, dtype=torch.float32, device=device)

    def reset(self) -> None:
        """Forget everything accumulated."""
        if self.mode == "exact":
            self._samples.reset()
            return
        with torch.no_grad():
            for name in COUNT_NAMES:
                getattr(self, name).zero_()
            self.invalid.zero_()

    def _on_device(self, predictions) -> bool:
        """Whether a batch is counted where it is: threshold mode, predictions on a GPU."""
        on_gpu = isinstance(predictions, torch.Tensor) and predictions.device.type != "cpu"
        return self.mode == "threshold" and on_gpu

    def _device_counts(self, predictions, labels) -> tuple[torch.Tensor, torch.Tensor]:
        """Count a GPU batch into the state (on the state's device); its counts and bad
        predictions."""
        thresholds = self._device_thresholds
        if thresholds.device != predictions.device:  # the module was not moved to the GPU
            thresholds = thresholds.to(predictions.device)
        counts, invalid = device_auc.confusion_counts(predictions, labels, thresholds)
        self._accumulate(counts)
        with torch.no_grad():
            self.invalid.add_(invalid.to(self.invalid.device))
        return counts, invalid

    def _batch_state(self, predictions, labels):
        """Counts ``[4, T]`` (threshold mode) or (scores, positive) of one batch."""
        predictions, labels = host_array(predictions), host_array(labels)
        if self.mode == "exact":
            return core.scored_labels(predictions, labels)
        return core.confusion_counts(predictions, labels, self._thresholds)

    def _accumulate(self, batch) -> None:
        if self.mode == "exact":
            self._samples.update(*batch)
            return
        counts = torch.as_tensor(batch).to(self.tp.device)  # NumPy counts, or a device's
        with torch.no_grad():
            for name, row in zip(COUNT_NAMES, counts, strict=True):
                getattr(self, name).add_(row)

    def _counts(self) -> np.ndarray:
        return torch.stack([getattr(self, n).detach() for n in COUNT_NAMES]).cpu().numpy()

    def _sum_over_ranks(self, state):
        if self.mode == "threshold":
            return all_reduce_sum(state)
        if not is_distributed():
            return state
        scores, positive = zip(*all_gather(state), strict=True)
        return np.concatenate(scores), np.concatenate(positive)

    def _auc_of(self, state) -> float:
        if self.mode == "threshold":
            return core.threshold_auc(state)
        return core.exact_auc(*state)

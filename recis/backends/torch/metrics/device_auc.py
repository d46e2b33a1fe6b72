"""The threshold AUC's math on torch tensors, where they are: the twins of
:func:`recis.framework.auc.confusion_counts` and :func:`recis.framework.auc.threshold_auc` that
:class:`~recis.metrics.AUROC` uses for predictions on a GPU, so that a training step that reports
its AUC never waits for the GPU.

Nothing is read back to check the input. Predictions that are NaN or outside [0, 1] are counted
instead (:func:`confusion_counts` returns their number), and an AUC over counts that include
them is NaN.

>>> thresholds = torch.linspace(0, 1, 5)
>>> counts, invalid = confusion_counts(torch.tensor([0.1, 0.4, 0.35, 0.8]),
...                                    torch.tensor([0, 0, 1, 1]), thresholds)
>>> counts.tolist(), int(invalid)
([[2, 2, 1, 1, 0], [2, 1, 0, 0, 0], [0, 1, 2, 2, 2], [0, 0, 1, 1, 2]], 0)
>>> round(float(threshold_auc(counts, invalid)), 4)
0.875
"""

from __future__ import annotations

import torch

from recis.framework.auc import RATE_EPSILON


def click_column(values: torch.Tensor, name: str) -> torch.Tensor:
    """The click column of ``[N]``, ``[N, 1]`` or ``[N, 2]`` (non-click, click) data."""
    if values.dim() == 2 and values.shape[1] in (1, 2):
        return values[:, -1]
    if values.dim() != 1:
        raise ValueError(
            f"{name} must be [N], [N, 1] or [N, 2] (non-click, click), got {list(values.shape)}"
        )
    return values


def confusion_counts(
    predictions: torch.Tensor, labels: torch.Tensor, thresholds: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """int64 ``[4, T]`` rows (tp, fp, tn, fn) at each threshold and the number of predictions
    that are NaN or outside [0, 1] (left out of the counts), on the predictions' device."""
    scores = click_column(predictions.detach(), "predictions")
    if not scores.is_floating_point():
        raise TypeError(f"predictions must be floating point, got {scores.dtype}")
    scores = scores.to(torch.promote_types(scores.dtype, torch.float32))
    positive = click_column(labels.detach(), "labels").to(scores.device)
    if positive.numel() != scores.numel():
        raise ValueError(
            f"predictions ({scores.numel()}) and labels ({positive.numel()}) differ in size"
        )
    positive = positive if positive.dtype == torch.bool else positive > 0.5
    valid = (scores >= 0) & (scores <= 1)  # False for NaN too
    thresholds = thresholds.to(scores.device, scores.dtype)
    size = thresholds.numel()
    below = torch.searchsorted(thresholds, scores.contiguous(), side="left")
    below = torch.where(valid, below, size)  # invalid scores land past the last threshold
    counts = torch.zeros(4, size + 1, dtype=torch.int64, device=scores.device)
    for above_row, other_row, mask in ((0, 3, positive), (1, 2, ~positive)):
        at_or_under = counts[other_row].scatter_add_(0, below, (mask & valid).long()).cumsum(0)
        counts[other_row] = at_or_under
        counts[above_row] = (mask & valid).sum() - at_or_under
    return counts[:, :size], (~valid).sum()


def threshold_auc(counts: torch.Tensor, invalid: torch.Tensor | int = 0) -> torch.Tensor:
    """Trapezoidal area under (FPR, TPR) from ``[4, T]`` counts (tp, fp, tn, fn) as a float64
    0-d tensor on their device; NaN when ``invalid`` predictions were seen."""
    tp, fp, tn, fn = counts.to(torch.float64)
    tpr = (tp + RATE_EPSILON) / (tp + fn + RATE_EPSILON)
    fpr = fp / (fp + tn + RATE_EPSILON)
    area = ((fpr[:-1] - fpr[1:]) * (tpr[:-1] + tpr[1:]) / 2).sum()
    return torch.where(torch.as_tensor(invalid, device=area.device) > 0, torch.nan, area)

"""RecIS's ``gauc_calc``: the AUC of every group of one batch and the group's click count.

A group is a run of equal ``indicators``. Groups of one sample, and groups whose labels are all
clicks or all non-clicks, give no AUC. Labels and predictions are ``[N]`` (click probability)
or ``[N, 2]`` (non-click, click); ties in the prediction count one half. Returns float64 AUCs
and int64 click counts (RecIS's ``Gauc`` weighs each group by its clicks).

>>> import torch
>>> labels = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0])
>>> predictions = torch.tensor([0.6, 0.4, 0.55, 0.45, 0.5])
>>> aucs, clicks = torch.ops.recis.gauc_calc(labels, predictions, torch.tensor([0, 0, 1, 1, 1]))
>>> aucs.tolist(), clicks.tolist()
([1.0, 0.5], [1, 1])
"""

from __future__ import annotations

import numpy as np
import torch

from recis.backends.torch.ops.registry import dynamic_size, recis_op


def _gauc_fake(labels, predictions, indicators):
    count = dynamic_size()
    return (
        labels.new_empty((count,), dtype=torch.float64),
        labels.new_empty((count,), dtype=torch.int64),
    )


@recis_op("gauc_calc(Tensor _0, Tensor _1, Tensor _2) -> (Tensor, Tensor)", _gauc_fake)
def gauc_calc(labels, predictions, indicators):
    """Per group with both classes: its AUC and click count (see the module docstring)."""
    clicks, non_clicks, scores = _columns(labels, predictions)
    groups = indicators.detach().cpu().numpy().reshape(-1)
    if groups.size != scores.size:
        raise ValueError(f"recis.gauc_calc: {groups.size} indicators for {scores.size} samples")
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]]) if groups.size else []
    ends = np.r_[starts[1:], groups.size] if groups.size else []
    aucs, counts = [], []
    for start, end in zip(starts, ends, strict=True):
        auc = _group_auc(clicks[start:end], non_clicks[start:end], scores[start:end])
        if end - start > 1 and auc is not None:
            aucs.append(auc)
            counts.append(round(clicks[start:end].sum()))
    return torch.tensor(aucs, dtype=torch.float64), torch.tensor(counts, dtype=torch.int64)


def _columns(labels, predictions):
    labels = labels.detach().cpu().double().numpy()
    predictions = predictions.detach().cpu().double().numpy()
    if labels.shape != predictions.shape or labels.ndim not in (1, 2):
        raise ValueError(
            f"recis.gauc_calc: labels {labels.shape} and predictions {predictions.shape} must "
            "be the same [N] or [N, 2]"
        )
    if labels.ndim == 2:
        return labels[:, 1], labels[:, 0], predictions[:, 1]
    return labels, 1.0 - labels, predictions


def _group_auc(clicks, non_clicks, scores) -> float | None:
    """Trapezoid AUC over the group's samples sorted by score; None without both classes."""
    positives, negatives = clicks.sum(), non_clicks.sum()
    if positives * negatives <= 0 or max(positives, negatives) > len(scores) - 1e-3:
        return None
    order = np.argsort(scores, kind="stable")
    _, first = np.unique(scores[order], return_index=True)
    tp = np.add.reduceat(clicks[order], first)  # ties share one step of the curve
    fp = np.add.reduceat(non_clicks[order], first)
    tp_before = np.cumsum(tp) - tp
    area = np.sum(fp * (2 * tp_before + tp))
    return float(1.0 - area / (2.0 * positives * negatives))

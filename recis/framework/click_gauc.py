"""RecIS's group AUC of one batch: each group's AUC weighted by its clicks.

A group is a run of equal consecutive indicators, complete within the batch; groups with one
class only (one sample included) are skipped. The AUC is exact, ties counting one half.

>>> weighted = batch_click_gauc([0.6, 0.4, 0.55, 0.45, 0.5], [1, 0, 0, 0, 1], [0, 0, 1, 1, 1])
>>> weighted, weighted.value  # AUCs 1.0 and 0.5, one click each
(WeightedAuc(auc_sum=1.5, weight=2), 0.75)
"""

from __future__ import annotations

import numpy as np

from recis.framework.auc import WeightedAuc, group_aucs, group_starts, scored_labels


def batch_click_gauc(predictions, labels, indicators) -> WeightedAuc:
    """Sum of the batch's group AUCs times their clicks, and the sum of those clicks."""
    values, positive = scored_labels(predictions, labels)
    indicators = np.asarray(indicators).reshape(-1)
    if indicators.shape != values.shape:
        raise ValueError(
            f"indicators must be [{values.size}] like the predictions, got {list(indicators.shape)}"
        )
    if values.size == 0:
        return WeightedAuc()
    starts = group_starts(indicators)
    aucs, _ = group_aucs(values, positive, starts)
    clicks = np.add.reduceat(positive.astype(np.int64), starts)
    counted = ~np.isnan(aucs)
    return WeightedAuc(float(np.sum(aucs[counted] * clicks[counted])), int(clicks[counted].sum()))

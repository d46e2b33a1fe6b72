"""Shared helpers of the metric tests: random data, batch splits and loop/sklearn references."""

from __future__ import annotations

import itertools

import numpy as np
from sklearn.metrics import roc_auc_score


def random_batch(rng, size, *, ties=True, positive_rate=0.4):
    """Predictions in [0, 1] (rounded to 2 decimals, so ties are common) and 0/1 labels."""
    predictions = rng.random(size)
    if ties:
        predictions = np.round(predictions, 2)
    return predictions, (rng.random(size) < positive_rate).astype(np.int64)


def random_spans(rng, size, pieces):
    """(start, end) of ``pieces`` consecutive batches covering ``size`` samples (some empty)."""
    cuts = np.sort(np.concatenate([[0, size], rng.integers(0, size + 1, pieces - 1)]))
    return list(itertools.pairwise(cuts))


def formula_threshold_auc(predictions, labels, num_thresholds):
    """RecIS's threshold AUC written out: Python-float thresholds, rates with 1e-6, trapezoids."""
    n = num_thresholds
    thresholds = [-1e-7] + [i / (n - 1) for i in range(1, n - 1)] + [1 + 1e-7]
    tpr, fpr = [], []
    for threshold in thresholds:
        tp = sum(p > threshold and y == 1 for p, y in zip(predictions, labels, strict=True))
        fp = sum(p > threshold and y == 0 for p, y in zip(predictions, labels, strict=True))
        positives = sum(y == 1 for y in labels)
        negatives = len(labels) - positives
        tpr.append((tp + 1e-6) / (positives + 1e-6))
        fpr.append(fp / (negatives + 1e-6))
    return sum((fpr[i] - fpr[i + 1]) * (tpr[i] + tpr[i + 1]) / 2 for i in range(n - 1))


def run_groups(indicators):
    """(start, end) of each run of equal indicators, by a Python loop."""
    runs, start = [], 0
    for i in range(1, len(indicators) + 1):
        if i == len(indicators) or indicators[i] != indicators[start]:
            runs.append((start, i))
            start = i
    return runs


def sklearn_gauc(predictions, labels, runs, by_clicks=False):
    """Mean of sklearn's AUC over the two-class runs weighted by their size (or clicks); NaN
    when there are none."""
    total = weight = 0.0
    for start, end in runs:
        clicks = labels[start:end].sum()
        if 0 < clicks < end - start:
            run_weight = clicks if by_clicks else end - start
            total += roc_auc_score(labels[start:end], predictions[start:end]) * run_weight
            weight += run_weight
    return total / weight if weight else float("nan")

"""AUC metrics on NumPy: RecIS's threshold AUC, the exact rank AUC, and grouped AUC (GAUC).

Labels and predictions are ``[N]`` or ``[N, 2]`` (non-click, click; the click column is used). A
label counts as positive when it is greater than 0.5. The exact AUC is the Mann–Whitney statistic:
the share of (positive, negative) pairs ranked correctly, a tie counting one half (as
``sklearn.metrics.roc_auc_score``); it is NaN while one class is missing.

Front ends (the torch modules in ``recis.metrics``) keep the state; this module holds the math:

- threshold AUC: confusion counts are a value (:func:`confusion_counts` of each batch add up);
  :func:`threshold_auc` turns them into the area;
- :class:`ExactAucAccumulator` keeps every score for :func:`exact_auc` over all data seen;
- :class:`GaucAccumulator` evaluates groups (contiguous runs of equal indicator) as they complete,
  carrying the last group of a batch over to the next batch.

>>> preds, labels = np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])
>>> counts = confusion_counts(preds, labels, auc_thresholds(200))
>>> round(threshold_auc(counts), 4), exact_auc(preds, labels)
(0.75, 0.75)
>>> gauc = GaucAccumulator()
>>> gauc.update(preds, labels, np.array([7, 7, 7, 9])).value  # group 9 may go on next batch
0.5
>>> gauc.update(np.array([0.3]), np.array([0]), np.array([9])).value  # 9 continues: none done
nan
>>> round(gauc.value(), 4)  # (0.5 * 3 + 1.0 * 2) / 5: the open group 9 counted as it stands
0.7
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recis.core import arrays as interop

THRESHOLD_MARGIN = 1e-7  # the outer thresholds lie this far outside [0, 1]
RATE_EPSILON = 1e-6  # added to the rates' numerators and denominators, as in RecIS


def click_column(array, name: str) -> np.ndarray:
    """The click column of ``[N]``, ``[N, 1]`` or ``[N, 2]`` (non-click, click) data."""
    array = np.asarray(array)
    if array.ndim == 2 and array.shape[1] in (1, 2):
        return array[:, -1]
    if array.ndim != 1:
        raise ValueError(
            f"{name} must be [N], [N, 1] or [N, 2] (non-click, click), got {list(array.shape)}"
        )
    return array


def positive_labels(labels) -> np.ndarray:
    """Boolean click column of ``labels``: True where the label is greater than 0.5."""
    labels = click_column(labels, "labels")
    if labels.dtype.kind not in "biuf":
        raise TypeError(f"labels must be boolean or numeric, got {labels.dtype}")
    return labels if labels.dtype.kind == "b" else labels > 0.5


def scores(predictions) -> np.ndarray:
    """Floating click column of ``predictions`` (at least float32); NaN is refused."""
    predictions = click_column(predictions, "predictions")
    if predictions.dtype.kind != "f":
        raise TypeError(f"predictions must be floating point, got {predictions.dtype}")
    predictions = predictions.astype(np.result_type(predictions.dtype, np.float32), copy=False)
    if np.isnan(predictions).any():
        raise ValueError("predictions contain NaN")
    return predictions


def scored_labels(predictions, labels) -> tuple[np.ndarray, np.ndarray]:
    """(scores, positive) of one batch, checked to have the same length."""
    values, positive = scores(predictions), positive_labels(labels)
    if values.size != positive.size:
        raise ValueError(f"predictions ({values.size}) and labels ({positive.size}) differ in size")
    return values, positive


def auc_thresholds(num_thresholds: int = 200) -> np.ndarray:
    """float32 thresholds ``{-1e-7, i/(n-1) for i = 1..n-2, 1+1e-7}`` (RecIS's)."""
    if num_thresholds < 3:
        raise ValueError(f"num_thresholds must be at least 3, got {num_thresholds}")
    inner = np.arange(1, num_thresholds - 1) / (num_thresholds - 1)
    edges = np.concatenate([[-THRESHOLD_MARGIN], inner, [1 + THRESHOLD_MARGIN]])
    return edges.astype(np.float32)


def confusion_counts(predictions, labels, thresholds: np.ndarray) -> np.ndarray:
    """int64 ``[4, T]`` rows (tp, fp, tn, fn) at each threshold; positive means pred > threshold.

    Predictions must lie in [0, 1]. They are compared with the thresholds in the wider of their
    dtype and float32.
    """
    values, positive = scored_labels(predictions, labels)
    if values.size and not (values.min() >= 0 and values.max() <= 1):
        raise ValueError(
            f"predictions must lie in [0, 1] for the threshold AUC, got values in "
            f"[{values.min()}, {values.max()}]"
        )
    thresholds = thresholds.astype(values.dtype)
    below = np.searchsorted(thresholds, values, side="left")  # thresholds under each score
    counts = interop.empty((4, thresholds.size), np.int64)
    for above_row, other_row, mask in ((0, 3, positive), (1, 2, ~positive)):
        at_or_under = np.cumsum(np.bincount(below[mask], minlength=thresholds.size + 1))
        counts[other_row] = at_or_under[: thresholds.size]
        counts[above_row] = np.count_nonzero(mask) - counts[other_row]
    return counts


def threshold_auc(counts: np.ndarray) -> float:
    """Trapezoidal area under (FPR, TPR) from ``[4, T]`` counts (tp, fp, tn, fn).

    TPR = (tp + 1e-6) / (tp + fn + 1e-6) and FPR = fp / (fp + tn + 1e-6), as in RecIS.
    """
    tp, fp, tn, fn = np.asarray(counts, np.float64)
    tpr = (tp + RATE_EPSILON) / (tp + fn + RATE_EPSILON)
    fpr = fp / (fp + tn + RATE_EPSILON)
    return float(np.sum((fpr[:-1] - fpr[1:]) * (tpr[:-1] + tpr[1:]) / 2))


def exact_auc(predictions, labels) -> float:
    """Exact rank AUC of one set of predictions (ties count one half; NaN for one class)."""
    values, positive = scored_labels(predictions, labels)
    order = np.argsort(values, kind="stable")
    return sorted_auc(values[order], positive[order])


def sorted_auc(sorted_scores: np.ndarray, sorted_positive: np.ndarray) -> float:
    """Exact rank AUC of scores already in increasing order, with their labels."""
    _, positives, negatives = tie_runs(sorted_scores, sorted_positive)
    negatives_below = np.cumsum(negatives) - negatives
    credit = int(np.sum(pair_credit(positives, negatives, negatives_below)))
    pairs = int(positives.sum()) * int(negatives.sum())
    return credit / (2 * pairs) if pairs else float("nan")


def tie_runs(sorted_scores, sorted_positive, breaks=None) -> tuple[np.ndarray, ...]:
    """(start, positives, negatives) of each run of equal scores; ``breaks`` (bool per sample)
    marks extra run starts, e.g. group boundaries."""
    size = sorted_scores.size
    new_run = np.ones(size, bool)
    np.not_equal(sorted_scores[1:], sorted_scores[:-1], out=new_run[1:])
    if breaks is not None:
        new_run |= breaks
    starts = np.flatnonzero(new_run)
    positives = np.add.reduceat(sorted_positive.astype(np.int64), starts) if size else starts
    return starts, positives, np.diff(np.append(starts, size)) - positives


def pair_credit(positives, negatives, negatives_below) -> np.ndarray:
    """Twice the correctly ordered pairs of each tie run: every positive beats the negatives
    below the run, and each pair within the run counts one half."""
    return 2 * positives * negatives_below + positives * negatives


def group_starts(indicators) -> np.ndarray:
    """Start of each run of equal consecutive ``indicators`` (a 1-D array)."""
    indicators = np.asarray(indicators)
    if indicators.ndim != 1:
        raise ValueError(f"indicators must be 1-D, got {list(indicators.shape)}")
    changes = np.flatnonzero(indicators[1:] != indicators[:-1]) + 1
    return np.concatenate([[0], changes]) if indicators.size else changes


def group_aucs(values, positive, starts) -> tuple[np.ndarray, np.ndarray]:
    """Exact AUC (NaN for a one-class group) and size of each group starting at ``starts``."""
    sizes = np.diff(np.append(starts, values.size))
    group = np.repeat(np.arange(starts.size), sizes)
    order = np.lexsort((values, group))  # within each group, by score; groups keep their place
    breaks = np.zeros(values.size, bool)
    breaks[starts] = True
    runs, positives, negatives = tie_runs(values[order], positive[order], breaks)
    run_group = group[runs]
    negatives_below = np.cumsum(negatives) - negatives
    negatives_below -= negatives_below[np.searchsorted(runs, starts)][run_group]
    credit = pair_credit(positives, negatives, negatives_below)
    group_credit = np.bincount(run_group, credit, minlength=starts.size)
    group_positives = np.bincount(run_group, positives, minlength=starts.size)
    pairs = group_positives * (sizes - group_positives)
    aucs = np.full(starts.size, np.nan)
    np.divide(group_credit, 2 * pairs, out=aucs, where=pairs > 0)
    return aucs, sizes


@dataclass(frozen=True)
class WeightedAuc:
    """Sum of group AUCs weighted by group size, and the sum of the sizes."""

    auc_sum: float = 0.0
    weight: int = 0

    def __add__(self, other: WeightedAuc) -> WeightedAuc:
        return WeightedAuc(self.auc_sum + other.auc_sum, self.weight + other.weight)

    @property
    def value(self) -> float:
        """The weighted mean AUC (NaN when no group was counted)."""
        return self.auc_sum / self.weight if self.weight else float("nan")

    @staticmethod
    def of_groups(values, positive, starts) -> WeightedAuc:
        """Sum over the two-class groups starting at ``starts``; one-class groups are skipped."""
        aucs, sizes = group_aucs(values, positive, starts)
        counted = ~np.isnan(aucs)
        return WeightedAuc(float(np.sum(aucs[counted] * sizes[counted])), int(sizes[counted].sum()))


class GaucAccumulator:
    """Streaming GAUC: every group counted once, even one that spans batches.

    A group is a contiguous run of equal indicator (the data must be grouped, e.g. by user). The
    last group of a batch stays open: it is prepended to the next batch, so it joins that batch's
    first group when the indicators match. ``total`` holds the groups completed so far;
    :meth:`value` also counts the open group as it stands.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.total = WeightedAuc()
        self._open = (np.empty(0, np.float32), np.empty(0, bool), np.empty(0, np.int64))

    def update(self, predictions, labels, indicators) -> WeightedAuc:
        """Add a batch; return the groups it completed (the open group before it included)."""
        values, positive = scored_labels(predictions, labels)
        indicators = np.asarray(indicators)
        if indicators.shape != values.shape:
            raise ValueError(
                f"indicators must be [{values.size}] like the predictions, got "
                f"{list(indicators.shape)}"
            )
        if self._open[0].size:
            values, positive, indicators = (
                np.concatenate([held, new])
                for held, new in zip(self._open, (values, positive, indicators), strict=True)
            )
        starts = group_starts(indicators)
        last = starts[-1] if starts.size else 0
        done = WeightedAuc.of_groups(values[:last], positive[:last], starts[:-1])
        self._open = (values[last:].copy(), positive[last:].copy(), indicators[last:].copy())
        self.total += done
        return done

    def open_group(self) -> WeightedAuc:
        """The open group, evaluated as if it were complete."""
        values, positive, _ = self._open
        return WeightedAuc.of_groups(values, positive, np.zeros(min(values.size, 1), np.int64))

    def value(self) -> float:
        """GAUC of everything seen, the open group included."""
        return (self.total + self.open_group()).value


class ExactAucAccumulator:
    """Every (score, label) seen, for the exact rank AUC over all data.

    Memory grows with the data: one score (4 bytes for float32 predictions) and one byte of
    label per sample. :meth:`update` only appends; :meth:`value` sorts what arrived since the
    last call into the sorted store (cost linear in the samples seen).
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._scores, self._positive = np.empty(0, np.float32), np.empty(0, bool)
        self._chunks: list[tuple[np.ndarray, np.ndarray]] = []

    def update(self, predictions, labels) -> None:
        values, positive = scored_labels(predictions, labels)
        self._chunks.append((values.copy(), positive.copy()))

    def samples(self) -> tuple[np.ndarray, np.ndarray]:
        """All scores seen, in increasing order, with their labels."""
        if self._chunks:
            values = np.concatenate([self._scores, *(c[0] for c in self._chunks)])
            positive = np.concatenate([self._positive, *(c[1] for c in self._chunks)])
            order = np.argsort(values, kind="stable")  # merges the sorted head in linear time
            self._scores, self._positive = values[order], positive[order]
            self._chunks = []
        return self._scores, self._positive

    def value(self) -> float:
        return sorted_auc(*self.samples())

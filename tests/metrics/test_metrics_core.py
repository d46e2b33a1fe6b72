"""AUC math on NumPy: threshold counts vs loops, exact and grouped AUC vs sklearn, streaming."""

from __future__ import annotations

import numpy as np
import pytest
from metric_helpers import (
    formula_threshold_auc,
    random_batch,
    random_spans,
    run_groups,
    sklearn_gauc,
)
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.metrics import roc_auc_score

from recis.framework import auc as metrics

SEEDS = range(8)


def loop_counts(predictions, labels, thresholds):
    """tp, fp, tn, fn at each threshold, one threshold at a time."""
    counts = np.zeros((4, len(thresholds)), np.int64)
    for t, threshold in enumerate(thresholds):
        above = predictions > threshold
        positive = labels > 0.5
        counts[:, t] = [
            np.sum(above & positive),
            np.sum(above & ~positive),
            np.sum(~above & ~positive),
            np.sum(~above & positive),
        ]
    return counts


def test_thresholds_are_recis_grid():
    assert_allclose(metrics.auc_thresholds(5), [-1e-7, 0.25, 0.5, 0.75, 1 + 1e-7], rtol=1e-7)
    assert metrics.auc_thresholds(200).dtype == np.float32
    with pytest.raises(ValueError, match="num_thresholds"):
        metrics.auc_thresholds(2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed", SEEDS)
def test_confusion_counts_match_a_loop_over_thresholds(seed, dtype):
    rng = np.random.default_rng(seed)
    thresholds = metrics.auc_thresholds(int(rng.integers(3, 40)))
    predictions, labels = random_batch(rng, int(rng.integers(0, 300)))
    predictions[: len(predictions) // 4] = rng.choice(thresholds[1:-1], len(predictions) // 4)
    predictions[:3] = [0.0, 1.0, 0.5][: len(predictions)]
    predictions = predictions.astype(dtype)
    counts = metrics.confusion_counts(predictions, labels, thresholds)
    assert_array_equal(counts, loop_counts(predictions, labels, thresholds.astype(dtype)))


def test_threshold_auc_on_ten_samples_is_recis_value():
    # ascending by score the labels read n n p n n n p n p p: 19 of the 24 pairs in order
    scores = np.arange(10) / 10 + 0.05
    labels = np.array([0, 0, 1, 0, 0, 0, 1, 0, 1, 1])
    order = np.random.default_rng(0).permutation(10)
    predictions, labels = scores[order], labels[order]
    counts = metrics.confusion_counts(predictions, labels, metrics.auc_thresholds(200))
    auc = metrics.threshold_auc(counts)
    assert auc == pytest.approx(formula_threshold_auc(predictions, labels, 200), abs=1e-12)
    assert round(auc, 4) == 0.7917


@pytest.mark.parametrize("seed", SEEDS)
def test_threshold_auc_equals_sklearn_when_scores_sit_between_thresholds(seed):
    rng = np.random.default_rng(seed)
    num_thresholds = int(rng.integers(3, 60))
    bins = rng.integers(0, num_thresholds - 1, 500)
    predictions = (bins + 0.5) / (num_thresholds - 1)  # one score per gap: ties stay ties
    labels = (rng.random(500) < 0.3).astype(int)
    counts = metrics.confusion_counts(predictions, labels, metrics.auc_thresholds(num_thresholds))
    assert metrics.threshold_auc(counts) == pytest.approx(roc_auc_score(labels, predictions), 1e-5)


@pytest.mark.parametrize("seed", SEEDS)
def test_threshold_auc_approximates_sklearn_on_continuous_scores(seed):
    rng = np.random.default_rng(seed)
    labels = (rng.random(5000) < 0.3).astype(int)
    predictions = 1 / (1 + np.exp(-(rng.standard_normal(5000) + labels)))
    counts = metrics.confusion_counts(predictions, labels, metrics.auc_thresholds(200))
    assert metrics.threshold_auc(counts) == pytest.approx(roc_auc_score(labels, predictions), 5e-3)


@pytest.mark.parametrize("seed", SEEDS)
def test_exact_auc_equals_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    predictions, labels = random_batch(rng, int(rng.integers(2, 400)))
    labels[:2] = [0, 1]
    expected = roc_auc_score(labels, predictions)
    assert metrics.exact_auc(predictions, labels) == pytest.approx(expected, abs=1e-12)
    logits = np.log(predictions + 1e-3)  # any real scores, no [0, 1] limit
    assert metrics.exact_auc(logits, labels) == pytest.approx(expected, abs=1e-12)


def test_exact_auc_of_one_class_is_nan_and_all_tied_is_half():
    assert np.isnan(metrics.exact_auc(np.array([0.1, 0.2]), np.array([1, 1])))
    assert np.isnan(metrics.exact_auc(np.array([]), np.array([])))
    assert metrics.exact_auc(np.full(6, 0.3), np.array([0, 1, 0, 1, 1, 0])) == 0.5


@pytest.mark.parametrize("seed", SEEDS)
def test_exact_accumulator_over_random_batches_equals_sklearn(seed):
    rng = np.random.default_rng(seed)
    predictions, labels = random_batch(rng, 1000)
    accumulator = metrics.ExactAucAccumulator()
    for start, end in random_spans(rng, 1000, 7):
        accumulator.update(predictions[start:end].astype(np.float32), labels[start:end])
        if end > start and 0 < labels[:end].sum() < end:
            expected = roc_auc_score(labels[:end], predictions[:end].astype(np.float32))
            assert accumulator.value() == pytest.approx(expected, abs=1e-12)
    scores, positive = accumulator.samples()
    assert np.all(np.diff(scores) >= 0) and positive.sum() == labels.sum()
    accumulator.reset()
    assert np.isnan(accumulator.value())


@pytest.mark.parametrize("seed", SEEDS)
def test_group_aucs_equal_sklearn_per_group(seed):
    rng = np.random.default_rng(seed)
    indicators = np.repeat(rng.integers(0, 4, 40), rng.integers(1, 9, 40))
    predictions, labels = random_batch(rng, indicators.size)
    starts = metrics.group_starts(indicators)
    aucs, sizes = metrics.group_aucs(predictions, labels > 0, starts)
    runs = run_groups(indicators)
    assert_array_equal(starts, [start for start, _ in runs])
    assert_array_equal(sizes, [end - start for start, end in runs])
    for auc, (start, end) in zip(aucs, runs, strict=True):
        if 0 < labels[start:end].sum() < end - start:
            assert auc == pytest.approx(roc_auc_score(labels[start:end], predictions[start:end]))
        else:
            assert np.isnan(auc)


@pytest.mark.parametrize("seed", SEEDS)
def test_gauc_counts_every_group_once_across_batches(seed):
    rng = np.random.default_rng(seed)
    indicators = np.repeat(rng.integers(0, 3, 60), rng.integers(1, 12, 60))
    predictions, labels = random_batch(rng, indicators.size)
    runs = run_groups(indicators)
    next_start = {end: start for start, end in runs}  # a run completes when the next one starts
    gauc = metrics.GaucAccumulator()
    for start, end in random_spans(rng, indicators.size, 9):
        done = gauc.update(predictions[start:end], labels[start:end], indicators[start:end])
        completed = [(s, e) for s, e in runs if e in next_start and start <= e < end]
        expected = sklearn_gauc(predictions, labels, completed)
        assert done.value == pytest.approx(expected, nan_ok=True)
    finished = [(s, e) for s, e in runs if e < indicators.size]
    assert gauc.total.value == pytest.approx(sklearn_gauc(predictions, labels, finished))
    assert gauc.value() == pytest.approx(sklearn_gauc(predictions, labels, runs))
    assert gauc.value() == pytest.approx(gauc.value())  # counting the open group keeps it open


def test_gauc_weights_groups_by_size_and_skips_one_class_groups():
    gauc = metrics.GaucAccumulator()
    predictions = np.array([0.9, 0.1, 0.2, 0.8, 0.4, 0.6, 0.3, 0.7])
    labels = np.array([1, 0, 1, 1, 0, 1, 0, 1])
    indicators = np.array([5, 6, 6, 6, 6, 6, 7, 7])  # 5: one sample; 6: AUC 5/6; 7: AUC 1
    done = gauc.update(predictions, labels, indicators)
    assert done.value == pytest.approx(5 / 6)  # group 7 is still open
    assert gauc.value() == pytest.approx((5 / 6 * 5 + 1 * 2) / 7)


def test_click_column_of_two_column_labels_and_predictions():
    labels = np.array([[1, 0], [0, 1], [1, 0], [0, 1]])
    predictions = np.array([[0.8, 0.2], [0.3, 0.7], [0.4, 0.6], [0.1, 0.9]])
    assert metrics.exact_auc(predictions, labels) == 1.0
    assert metrics.exact_auc(predictions[:, 1:], labels[:, 1]) == 1.0
    soft = np.array([0.1, 0.9, 0.4, 0.6])  # labels above 0.5 are clicks
    assert_array_equal(metrics.positive_labels(soft), [False, True, False, True])


@pytest.mark.parametrize(
    ("predictions", "labels", "error", "message"),
    [
        (np.array([0.5, 1.5]), np.array([0, 1]), ValueError, r"\[0, 1\].*1\.5"),
        (np.array([-0.1, 0.5]), np.array([0, 1]), ValueError, r"\[0, 1\]"),
        (np.array([np.nan, 0.5]), np.array([0, 1]), ValueError, "NaN"),
        (np.array([0.5, 0.5]), np.array([0, 1, 1]), ValueError, "differ in size"),
        (np.array([1, 0]), np.array([0, 1]), TypeError, "floating point"),
        (np.zeros((2, 3)), np.array([0, 1]), ValueError, "predictions must be"),
        (np.array([0.5, 0.5]), np.array(["a", "b"]), TypeError, "labels must be"),
    ],
)
def test_bad_inputs_are_refused_with_clear_errors(predictions, labels, error, message):
    with pytest.raises(error, match=message):
        metrics.confusion_counts(predictions, labels, metrics.auc_thresholds(10))


def test_gauc_refuses_indicators_of_another_length():
    with pytest.raises(ValueError, match="indicators must be"):
        metrics.GaucAccumulator().update(np.array([0.1, 0.2]), np.array([0, 1]), np.array([1]))

"""Torch ``AUROC``: RecIS's 10-sample value, state_dict, streaming, exact mode vs sklearn."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from metric_helpers import formula_threshold_auc, random_batch, random_spans
from sklearn.metrics import roc_auc_score

from recis.backends.torch.metrics.auroc import AUROC as AUROCByPath
from recis.backends.torch.metrics.gauc import Gauc as GaucByPath
from recis.metrics import AUROC, GAUC, Gauc

# ascending by score the labels read n n p n n n p n p p: 19 of the 24 pairs in order
TEN_PREDICTIONS = torch.tensor([0.85, 0.15, 0.55, 0.95, 0.25, 0.05, 0.45, 0.65, 0.75, 0.35])
TEN_LABELS = torch.tensor([1, 0, 0, 1, 1, 0, 0, 1, 0, 0])


def test_public_import_paths():
    assert AUROC is AUROCByPath and Gauc is GaucByPath and GAUC is Gauc


def test_ten_samples_give_recis_value():
    expected = formula_threshold_auc(TEN_PREDICTIONS.tolist(), TEN_LABELS.tolist(), 200)
    assert round(expected, 4) == 0.7917
    auc = AUROC(num_thresholds=200)
    assert auc(TEN_PREDICTIONS, TEN_LABELS).item() == pytest.approx(expected, abs=1e-6)
    assert auc.compute().item() == pytest.approx(expected, abs=1e-6)
    fresh = AUROC()
    fresh.update(TEN_PREDICTIONS[:4], TEN_LABELS[:4])
    fresh.update(TEN_PREDICTIONS[4:], TEN_LABELS[4:])
    assert fresh.compute().item() == pytest.approx(expected, abs=1e-6)


def test_counts_are_non_trainable_state_dict_entries():
    auc = AUROC(num_thresholds=50)
    auc.update(TEN_PREDICTIONS, TEN_LABELS)
    state = auc.state_dict()
    assert sorted(state) == ["fn", "fp", "tn", "tp"]
    assert all(v.dtype == torch.int64 and v.shape == (50,) for v in state.values())
    assert not any(p.requires_grad for p in auc.parameters())
    assert int(state["tp"][0] + state["fn"][0]) == int(TEN_LABELS.sum())
    restored = AUROC(num_thresholds=50)
    restored.load_state_dict(state)
    assert restored.compute().item() == auc.compute().item()
    assert torch.optim.SGD(auc.parameters(), lr=1.0).step() is None  # optimizers leave them alone
    assert restored.compute().item() == auc.compute().item()


def test_forward_returns_the_batch_value_and_accumulates():
    auc = AUROC()
    first = auc(torch.tensor([0.2, 0.6, 0.4]), torch.tensor([0, 1, 1]))
    second = auc(torch.tensor([0.9, 0.1]), torch.tensor([0, 1]))
    assert first.dtype == torch.float32 and first.item() == pytest.approx(1.0, abs=1e-5)
    assert second.item() == pytest.approx(0.0, abs=1e-5)
    both = roc_auc_score([0, 1, 1, 0, 1], [0.2, 0.6, 0.4, 0.9, 0.1])
    assert auc.compute().item() == pytest.approx(both, abs=1e-5)
    auc.reset()
    assert all(int(p.sum()) == 0 for p in auc.parameters())


@pytest.mark.parametrize("seed", range(4))
def test_exact_mode_streams_to_sklearn(seed):
    rng = np.random.default_rng(seed)
    predictions, labels = random_batch(rng, 700)
    auc = AUROC(mode="exact")
    for start, end in random_spans(rng, 700, 6):
        batch = auc(torch.tensor(predictions[start:end]), torch.tensor(labels[start:end]))
        if 0 < labels[start:end].sum() < end - start:
            expected = roc_auc_score(labels[start:end], predictions[start:end])
            assert batch.item() == pytest.approx(expected, abs=1e-6)
    assert auc.compute().item() == pytest.approx(roc_auc_score(labels, predictions), abs=1e-6)
    assert auc.state_dict() == {}


def test_half_precision_and_two_column_inputs():
    predictions = TEN_PREDICTIONS.to(torch.bfloat16)
    labels = torch.stack([1 - TEN_LABELS, TEN_LABELS], dim=1)  # (non-click, click)
    expected = roc_auc_score(TEN_LABELS.numpy(), predictions.float().numpy())
    assert AUROC(mode="exact")(predictions, labels).item() == pytest.approx(expected, abs=1e-6)


def test_threshold_mode_refuses_predictions_outside_unit_interval():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        AUROC()(torch.tensor([0.5, 3.0]), torch.tensor([0, 1]))
    assert AUROC(mode="exact")(torch.tensor([0.5, 3.0]), torch.tensor([0, 1])).item() == 1.0
    with pytest.raises(ValueError, match="mode"):
        AUROC(mode="roc")

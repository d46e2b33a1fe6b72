"""DeepFM for Criteo-shaped data, written against RecIS's API (torch backend).

13 dense features (``I1``..``I13``, log-transformed) and 26 categorical ones (``C1``..``C26``,
lists of raw int64 ids). Each categorical feature has an embedding table (``dim`` wide, in the FM
interactions and the MLP) and a bias table (1 wide, the first-order term); all tables grow with
the data. The ``forward`` pass returns the loss and reports AUC through ``add_metric``.
"""

from __future__ import annotations

import torch
from torch import nn

from recis.features import FeatureEngine
from recis.features.feature import Feature
from recis.features.op import SelectField
from recis.framework.metrics import add_metric
from recis.metrics import AUROC
from recis.nn import EmbeddingEngine, EmbeddingOption
from recis.nn.initializers import TruncNormalInitializer
from recis.tools.synthetic import CATEGORICAL, DENSE


def feature_engine() -> FeatureEngine:
    """Each categorical column read twice: for its embedding and for its bias."""
    features = []
    for column in CATEGORICAL:
        features.append(Feature(f"{column}_emb").add_op(SelectField(column)))
        features.append(Feature(f"{column}_bias").add_op(SelectField(column)))
    return FeatureEngine(features)


def embedding_options(dim: int, device: str = "cpu") -> dict[str, EmbeddingOption]:
    """An embedding and a bias table per categorical column, their rows on ``device``."""
    init = TruncNormalInitializer(std=0.01)
    options = {}
    for column in CATEGORICAL:
        options[f"{column}_emb"] = EmbeddingOption(
            embedding_dim=dim, shared_name=f"{column}_emb", initializer=init, device=device
        )
        options[f"{column}_bias"] = EmbeddingOption(
            embedding_dim=1, shared_name=f"{column}_bias", initializer=init, device=device
        )
    return options


def deep_tower(dim: int, hidden: tuple[int, ...]) -> nn.Sequential:
    """The MLP over the flattened embeddings and the dense features, one logit out."""
    layers, width = [], len(CATEGORICAL) * dim + len(DENSE)
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        width = size
    return nn.Sequential(*layers, nn.Linear(width, 1))


def deepfm_logits(tower: nn.Module, batch: dict, out: dict) -> torch.Tensor:
    """FM first and second order + ``tower`` over the looked-up embeddings ``out`` (``{c}_emb``
    [B, dim] and ``{c}_bias`` [B, 1] per categorical column) and the batch's dense features."""
    stacked = torch.stack([out[f"{c}_emb"] for c in CATEGORICAL], dim=1)  # [B, 26, dim]
    first_order = torch.cat([out[f"{c}_bias"] for c in CATEGORICAL], dim=1).sum(1)
    second_order = 0.5 * (stacked.sum(1).pow(2) - stacked.pow(2).sum(1)).sum(1)
    dense = torch.log1p(torch.cat([batch[name] for name in DENSE], dim=1).clamp_min(0))
    deep = tower(torch.cat([stacked.flatten(1), dense], dim=1)).squeeze(1)
    return first_order + second_order + deep


class DeepFM(nn.Module):
    """FM (first and second order) + MLP over the embeddings and dense features; the tables
    live on ``device`` (move the module there too)."""

    def __init__(
        self, dim: int = 16, hidden: tuple[int, ...] = (400, 400, 400), device: str = "cpu"
    ) -> None:
        super().__init__()
        self.features = feature_engine()
        self.embeddings = EmbeddingEngine(embedding_options(dim, device))
        self.mlp = deep_tower(dim, hidden)
        self.auc = AUROC(num_thresholds=200)

    def logits(self, batch: dict) -> torch.Tensor:
        return deepfm_logits(self.mlp, batch, self.embeddings(self.features(batch)))

    def forward(self, batch: dict) -> torch.Tensor:
        logits = self.logits(batch)
        label = batch["label"].reshape(-1).float()
        loss = nn.functional.binary_cross_entropy_with_logits(logits.float(), label)
        self.auc.update(torch.sigmoid(logits.detach().float()), label)
        add_metric("auc", self.auc.compute())
        return loss

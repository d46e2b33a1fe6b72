"""DLRM for Criteo-shaped data, written against RecIS's API (torch backend).

A bottom MLP embeds the 13 dense features into the embedding width; the 26 categorical features
look up growable tables; the pairwise dot products of all 27 vectors, with the bottom output,
feed a top MLP. The ``forward`` pass returns the loss and reports AUC through ``add_metric``.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

from recis.framework.metrics import add_metric
from recis.metrics import AUROC
from recis.nn import EmbeddingEngine, EmbeddingOption
from recis.nn.initializers import UniformInitializer
from recis.tools.synthetic import CATEGORICAL, DENSE


def mlp(sizes: list[int], last_activation: bool) -> nn.Sequential:
    layers = []
    for index, (width, size) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(width, size))
        if last_activation or index < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class DLRM(nn.Module):
    """Bottom MLP, embeddings, dot interactions, top MLP; the tables live on ``device`` (move
    the module there too)."""

    def __init__(self, dim: int = 16, bottom=(64, 32), top=(256, 64), device: str = "cpu") -> None:
        super().__init__()
        bound = dim**-0.5
        options = {
            c: EmbeddingOption(
                embedding_dim=dim,
                shared_name=c,
                initializer=UniformInitializer(-bound, bound),
                device=device,
            )
            for c in CATEGORICAL
        }
        self.embeddings = EmbeddingEngine(options)
        self.bottom = mlp([len(DENSE), *bottom, dim], last_activation=True)
        vectors = len(CATEGORICAL) + 1
        self.top = mlp([dim + vectors * (vectors - 1) // 2, *top, 1], last_activation=False)
        self.pairs = torch.triu_indices(vectors, vectors, offset=1)
        self.auc = AUROC(num_thresholds=200)

    def logits(self, batch: dict) -> torch.Tensor:
        dense = torch.log1p(torch.cat([batch[name] for name in DENSE], dim=1).clamp_min(0))
        bottom = self.bottom(dense)
        out = self.embeddings({c: batch[c] for c in CATEGORICAL})
        vectors = torch.stack([bottom, *(out[c] for c in CATEGORICAL)], dim=1)  # [B, 27, dim]
        dots = torch.bmm(vectors, vectors.transpose(1, 2))[:, self.pairs[0], self.pairs[1]]
        return self.top(torch.cat([bottom, dots], dim=1)).squeeze(1)

    def forward(self, batch: dict) -> torch.Tensor:
        logits = self.logits(batch)
        label = batch["label"].reshape(-1).float()
        loss = nn.functional.binary_cross_entropy_with_logits(logits.float(), label)
        self.auc.update(torch.sigmoid(logits.detach().float()), label)
        add_metric("auc", self.auc.compute())
        return loss

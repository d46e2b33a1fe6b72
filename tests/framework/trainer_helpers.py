"""A small CTR model and dataset for trainer tests."""

from __future__ import annotations

import torch
from torch import nn

from recis.backends.torch.initializers import NormalInitializer
from recis.framework.metrics import add_metric
from recis.io import OrcDataset
from recis.metrics import AUROC
from recis.nn import EmbeddingEngine, EmbeddingOption, filter_out_sparse_param
from recis.optim import SparseAdagrad
from recis.tools.synthetic import write_dataset

COLUMNS = ("C1", "C2", "C3")


class TinyModel(nn.Module):
    """Embeddings of three categorical columns and one dense column, a small MLP, BCE loss."""

    def __init__(self, dim: int = 4) -> None:
        super().__init__()
        init = NormalInitializer(std=0.05)
        self.engine = EmbeddingEngine(
            {
                c: EmbeddingOption(embedding_dim=dim, shared_name=c, initializer=init)
                for c in COLUMNS
            }
        )
        self.mlp = nn.Sequential(
            nn.Linear(3 * dim + 1, 8), nn.ReLU(), nn.Dropout(0.1), nn.Linear(8, 1)
        )
        self.auc = AUROC()

    def forward(self, batch: dict) -> torch.Tensor:
        out = self.engine({c: batch[c] for c in COLUMNS})
        dense = torch.log1p(batch["I1"].clamp_min(0))
        logits = self.mlp(torch.cat([*(out[c] for c in COLUMNS), dense], dim=1)).squeeze(1)
        label = batch["label"].reshape(-1)
        self.auc.update(torch.sigmoid(logits.detach()), label)
        add_metric("auc", self.auc.compute())
        return nn.functional.binary_cross_entropy_with_logits(logits, label)


def make_data(directory: str, rows: int = 2000, seed: int = 0) -> str:
    write_dataset(directory, rows=rows, files=2, seed=seed, stripe_size=4096)
    return directory


def dataset(directory: str, batch_size: int = 64, shuffle: bool = True) -> OrcDataset:
    data = OrcDataset(
        batch_size, read_threads_num=2, prefetch=2, shuffle=shuffle, seed=3,
        transform_fn=[lambda tables: tables[0]],
    )  # fmt: skip
    data.add_path(directory)
    data.fixedlen_feature("label", [0.0])
    data.fixedlen_feature("I1", [0.0])
    for column in COLUMNS:
        data.varlen_feature(column)
    return data


def build(seed: int = 0):
    """Model, dense optimizer and sparse optimizer, deterministic in ``seed``."""
    torch.manual_seed(seed)
    model = TinyModel()
    dense = torch.optim.Adam(model.mlp.parameters(), lr=1e-2)
    sparse = SparseAdagrad(filter_out_sparse_param(model), lr=0.05)
    return model, dense, sparse


def final_state(model: TinyModel) -> dict:
    """Every weight of the model: dense parameters and each table's rows by id."""
    state = {f"dense.{k}": v.detach().clone() for k, v in model.mlp.state_dict().items()}
    for table in model.engine.tables.values():
        for key, value in table.table.state_dict().items():
            state[f"{table.name}.{key}"] = torch.as_tensor(
                value.astype("float64") if value.dtype.kind == "V" else value
            )
    return state

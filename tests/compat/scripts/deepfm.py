"""A DeepFM written as RecIS's examples write one, launched with ``torchrun``.

    torchrun --nproc_per_node 2 deepfm.py DATA_DIR OUTPUT_DIR

Trains one epoch of at most 20 steps, then builds a new model and trainer that resume from the
checkpoint in ``OUTPUT_DIR`` for a second epoch; each rank writes both runs' step losses, final
step and checkpoint list to ``OUTPUT_DIR/result-<rank>.json``.
"""

import json
import os
import sys

import torch
import torch.distributed as dist
from torch import nn

from recis.features.feature import Feature
from recis.features.feature_engine import FeatureEngine
from recis.features.op import SelectField
from recis.framework.metrics import add_metric
from recis.framework.trainer import Trainer, TrainingArguments
from recis.io.orc_dataset import OrcDataset
from recis.metrics.auroc import AUROC
from recis.nn import EmbeddingEngine
from recis.nn.initializers import TruncNormalInitializer
from recis.nn.modules.embedding import EmbeddingOption
from recis.nn.modules.hashtable import filter_out_sparse_param
from recis.optim.sparse_adamw import SparseAdamW

NUMERIC = ["i1", "i2", "i3"]
CATEGORICAL = ["c1", "c2", "c3", "c4"]
DIM = 8


def get_dataset(data_dir):
    dataset = OrcDataset(
        64,
        worker_idx=int(os.environ.get("RANK", 0)),
        worker_num=int(os.environ.get("WORLD_SIZE", 1)),
        read_threads_num=1,
        prefetch=1,
        is_compressed=False,
        drop_remainder=True,
        transform_fn=[lambda x: x[0]],
        dtype=torch.float32,
        device="cpu",
        save_interval=1000,
    )
    dataset.add_path(data_dir)
    dataset.fixedlen_feature("label", [0.0])
    for name in NUMERIC + CATEGORICAL:
        dataset.varlen_feature(name)
    return dataset


def features():
    confs = [Feature(name).add_op(SelectField(name, dim=1)) for name in NUMERIC]
    for name in CATEGORICAL:
        for suffix in ("_emb", "_bias"):
            confs.append(Feature(name + suffix).add_op(SelectField(name)))
    return confs


def embeddings():
    options = {}
    for name in CATEGORICAL:
        for suffix, dim in (("_emb", DIM), ("_bias", 1)):
            options[name + suffix] = EmbeddingOption(
                embedding_dim=dim,
                shared_name=name + suffix,
                combiner="sum",
                initializer=TruncNormalInitializer(std=0.01),
                device=torch.device("cpu"),
            )
    return options


class DeepFM(nn.Module):
    def __init__(self):
        super().__init__()
        self.feature_engine = FeatureEngine(feature_list=features())
        self.embedding_engine = EmbeddingEngine(embeddings())
        self.numeric_embs = nn.Parameter(torch.randn(len(NUMERIC), DIM) * 0.01)
        self.numeric_biases = nn.Parameter(torch.zeros(len(NUMERIC), 1))
        width = (len(NUMERIC) + len(CATEGORICAL)) * DIM
        self.dnn = nn.Sequential(nn.Linear(width, 16), nn.ReLU(), nn.Linear(16, 1))
        self.loss_fn = nn.BCELoss()
        self.auc = AUROC(num_thresholds=200, dist_sync_on_step=True)
        self.losses = []

    def forward(self, samples):
        samples = self.embedding_engine(self.feature_engine(samples))
        labels = samples.pop("label")
        batch = labels.shape[0]
        numeric = torch.stack([samples[n] for n in NUMERIC], dim=1)
        weights = torch.cat([numeric, torch.ones(batch, len(CATEGORICAL), 1)], dim=1)
        embs = torch.cat(
            [
                self.numeric_embs.expand(batch, -1, -1),
                torch.stack([samples[f"{n}_emb"] for n in CATEGORICAL], dim=1),
            ],
            dim=1,
        )
        biases = torch.cat(
            [
                self.numeric_biases.expand(batch, -1, -1),
                torch.stack([samples[f"{n}_bias"] for n in CATEGORICAL], dim=1),
            ],
            dim=1,
        )
        first = (weights * biases).sum(dim=(1, 2)).unsqueeze(-1)
        weighted = embs * weights
        second = 0.5 * (weighted.sum(1) ** 2 - (weighted**2).sum(1)).sum(-1, keepdim=True)
        out = torch.sigmoid(first + second + self.dnn(embs.flatten(1)))
        loss = self.loss_fn(out, labels)
        self.auc.update(out, labels)
        add_metric("auc", self.auc.compute())
        self.losses.append(loss.item())
        return loss


def train(data_dir, output_dir, train_epoch):
    """Train ``train_epoch`` epochs (resuming from ``output_dir``); this launch's record."""
    torch.manual_seed(0)
    model = DeepFM()
    sparse_optim = SparseAdamW(filter_out_sparse_param(model), lr=0.02)
    dense_optim = torch.optim.AdamW(model.parameters(), lr=0.01)
    args = TrainingArguments(
        output_dir=output_dir, train_steps=20, train_epoch=train_epoch, save_steps=15, log_steps=5
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=get_dataset(data_dir),
        dense_optimizers=(dense_optim, None),
        sparse_optimizer=sparse_optim,
    )
    trainer.train()
    dist.barrier()
    with open(os.path.join(output_dir, "checkpoint")) as f:
        saved = f.read().split()
    return {
        "losses": model.losses,
        "global_step": int(trainer.global_step),
        "checkpoints": saved,
    }


def main(data_dir, output_dir):
    """One epoch, then a new model and trainer that resume from its checkpoint for a second."""
    dist.init_process_group()
    runs = [train(data_dir, output_dir, train_epoch) for train_epoch in (1, 2)]
    with open(os.path.join(output_dir, f"result-{dist.get_rank()}.json"), "w") as f:
        json.dump(runs, f)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

"""A training script written for RecIS (its quickstart's shape), run unchanged.

Launched with torchrun-style environment variables; reads ORC data from the directory in
argv[1] and writes checkpoints to argv[2].
"""

import sys

import torch
import torch.distributed as dist
from torch import nn

from recis.features import FeatureEngine, Mod, SelectField
from recis.features.feature import Feature
from recis.framework import Trainer
from recis.framework.metrics import add_metric
from recis.framework.trainer import TrainingArguments
from recis.hooks import HashTableFilterHook
from recis.io import OrcDataset
from recis.metrics.auroc import AUROC
from recis.nn import EmbeddingEngine, EmbeddingOption
from recis.nn.hashtable_hook import FilterHook
from recis.nn.initializers import TruncNormalInitializer
from recis.nn.modules.hashtable import filter_out_sparse_param
from recis.optim import SparseAdamW

data_dir, output_dir = sys.argv[1], sys.argv[2]
ds = OrcDataset(
    256, worker_idx=0, worker_num=1, read_threads_num=2, prefetch=1, drop_remainder=True,
    transform_fn=[lambda tables: tables[0]], device="cpu", save_interval=1000,
)  # fmt: skip
ds.add_path(data_dir)
ds.fixedlen_feature("label", [0.0])
ds.varlen_feature("C1")
ds.varlen_feature("C2")

features = [
    Feature("user_id").add_op(SelectField("C1")).add_op(Mod(10000)),
    Feature("item_id").add_op(SelectField("C2")).add_op(Mod(20000)),
]
emb_opts = {
    "user_id": EmbeddingOption(
        embedding_dim=16, shared_name="user_emb", initializer=TruncNormalInitializer(std=0.01),
        filter_hook=FilterHook("GlobalStepFilter", {"filter_step": 50}),
    ),
    "item_id": EmbeddingOption(embedding_dim=16, shared_name="item_emb"),
}  # fmt: skip


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.fe = FeatureEngine(features)
        self.ee = EmbeddingEngine(emb_opts)
        self.mlp = nn.Sequential(nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 1))
        self.auc = AUROC(num_thresholds=200)

    def forward(self, batch):
        batch = self.fe(batch)
        batch = self.ee(batch)
        y = batch.pop("label").reshape(-1)
        logits = self.mlp(torch.cat([batch["user_id"], batch["item_id"]], -1)).squeeze(-1)
        self.auc.update(torch.sigmoid(logits.detach()), y)
        add_metric("auc", self.auc.compute())
        return nn.functional.binary_cross_entropy_with_logits(logits, y)


dist.init_process_group()
model = Model()
sparse_opt = SparseAdamW(filter_out_sparse_param(model), lr=1e-3)
dense_opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
trainer = Trainer(
    model=model,
    args=TrainingArguments(output_dir=output_dir, train_steps=12, save_steps=6, log_steps=4),
    train_dataset=ds,
    dense_optimizers=(dense_opt, None),
    sparse_optimizer=sparse_opt,
)
trainer.add_hooks([HashTableFilterHook(5)])
trainer.train()
print(f"finished at step {trainer.global_step}")
dist.destroy_process_group()

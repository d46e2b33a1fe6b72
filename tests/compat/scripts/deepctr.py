"""A DeepCTR-style model written as RecIS's deepctr example writes one, launched with ``torchrun``.

    torchrun --nproc_per_node 2 deepctr.py DATA_DIR OUTPUT_DIR

String sequences are read as int8 bytes (``trans_int8``) and hashed with ``Hash("farm")``; a
float is bucketized; two id columns are crossed with ``FeatureCross``; the hashed sequence is
truncated and embedded with the ``tile`` combiner; tables train with ``SparseAdamWTF``.
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
from recis.features.op import (
    Bucketize,
    FeatureCross,
    Hash,
    Mod,
    SelectField,
    SelectFields,
    SequenceTruncate,
)
from recis.framework.metrics import add_metric
from recis.framework.trainer import Trainer, TrainingArguments
from recis.io.orc_dataset import OrcDataset
from recis.metrics.auroc import AUROC
from recis.nn import EmbeddingEngine
from recis.nn.initializers import TruncNormalInitializer
from recis.nn.modules.embedding import EmbeddingOption
from recis.nn.modules.hashtable import filter_out_sparse_param
from recis.optim import SparseAdamWTF

TILE_LEN = 4


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
    dataset.fixedlen_feature("dense", [0.0])
    dataset.varlen_feature("sparse1")
    dataset.varlen_feature("sparse2")
    dataset.varlen_feature("tokens", hash_type=None, trans_int8=True)
    return dataset


def features():
    truncate = SequenceTruncate(
        seq_len=TILE_LEN, truncate=True, truncate_side="right", check_length=True, n_dims=2
    )
    return [
        Feature("dense").add_op(SelectField("dense", dim=1)).add_op(Bucketize([0.25, 0.5, 0.75])),
        Feature("sparse1").add_op(SelectField("sparse1")),
        Feature("sparse2").add_op(SelectField("sparse2")).add_op(Mod(100)),
        Feature("tokens")
        .add_op(SelectField("tokens"))
        .add_op(Hash(hash_type="farm"))
        .add_op(Mod(10000))
        .add_op(truncate),
        Feature("sparse1_x_sparse2")
        .add_op(SelectFields([SelectField("sparse1"), SelectField("sparse2")]))
        .add_op(FeatureCross())
        .add_op(Mod(1000)),
    ]


def option(dim, combiner="sum", **kwargs):
    return EmbeddingOption(
        embedding_dim=dim,
        combiner=combiner,
        initializer=TruncNormalInitializer(mean=0, std=0.01),
        device=torch.device("cpu"),
        **kwargs,
    )


def embeddings():
    return {
        "dense": option(4, shared_name="dense"),
        "sparse1": option(8, shared_name="sparse1"),
        "sparse2": option(8, shared_name="sparse2"),
        "tokens": option(8, "tile", shared_name="tokens", combiner_kwargs={"tile_len": TILE_LEN}),
        "sparse1_x_sparse2": option(8, "mean", shared_name="sparse1_x_sparse2"),
    }


class DeepCTR(nn.Module):
    def __init__(self):
        super().__init__()
        self.feature_engine = FeatureEngine(feature_list=features())
        self.embedding_engine = EmbeddingEngine(embeddings())
        self.dnn = nn.Sequential(
            nn.Linear(4 + 8 + 8 + 8 * TILE_LEN + 8, 32), nn.ReLU(), nn.Linear(32, 1)
        )
        self.loss_fn = nn.BCELoss()
        self.auc = AUROC(num_thresholds=200, dist_sync_on_step=True)
        self.losses = []

    def forward(self, samples):
        samples = self.embedding_engine(self.feature_engine(samples))
        labels = samples.pop("label")
        tokens = samples["tokens"]
        inputs = [samples["dense"], samples["sparse1"], samples["sparse2"]]
        inputs += [tokens.view(tokens.shape[0], -1), samples["sparse1_x_sparse2"]]
        probability = torch.sigmoid(self.dnn(torch.cat(inputs, -1)))
        loss = self.loss_fn(probability, labels)
        self.auc.update(probability, labels)
        add_metric("auc", self.auc.compute())
        self.losses.append(loss.item())
        return loss


def train(data_dir, output_dir, train_epoch):
    """Train ``train_epoch`` epochs (resuming from ``output_dir``); this launch's record."""
    torch.manual_seed(0)
    model = DeepCTR()
    sparse_optim = SparseAdamWTF(filter_out_sparse_param(model), lr=0.02)
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

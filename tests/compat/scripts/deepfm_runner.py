"""A runner in the shape of RecIS's DeepFM example: its arguments parsed by RecIS's
``ArgumentParser`` from dataclasses, a ``transform_fn`` that builds the ``_emb``/``_bias``
inputs of each categorical column, ``add_paths``, a ``ProfilerHook`` added on rank 0.

    torchrun --nproc_per_node 1 deepfm_runner.py --data_paths=DIR --batch_size=64 ... \
        --gradient_accumulation_steps=2 --output_dir=OUT --result=OUT/result.json

Writes the parsed arguments and the step losses to ``--result``.
"""

import json
import os
from dataclasses import asdict, dataclass

import torch
import torch.distributed as dist
from torch import nn

from recis.features.feature import Feature
from recis.features.feature_engine import FeatureEngine
from recis.features.op import SelectField
from recis.framework.metrics import add_metric
from recis.framework.trainer import Trainer, TrainingArguments
from recis.hooks import ProfilerHook
from recis.io.orc_dataset import OrcDataset
from recis.metrics.auroc import AUROC
from recis.nn import EmbeddingEngine
from recis.nn.initializers import TruncNormalInitializer
from recis.nn.modules.embedding import EmbeddingOption
from recis.nn.modules.hashtable import filter_out_sparse_param
from recis.optim.sparse_adamw import SparseAdamW
from recis.utils.parser import ArgumentParser

NUMERIC = ["i1", "i2"]
CATEGORICAL = ["c1", "c2", "c3"]
DIM = 8


@dataclass
class LRConfig:
    dense_lr: float = 0.01
    sparse_lr: float = 0.02


@dataclass
class IOArgs:
    data_paths: str
    batch_size: int
    thread_num: int
    prefetch: int
    drop_remainder: bool


@dataclass
class Output:
    result: str


def transform_batch(batch_list):
    batch = {"label": batch_list[0]["label"]}
    for name in NUMERIC:
        batch[name] = batch_list[0][name]
    for name in CATEGORICAL:
        batch[name + "_emb"] = batch_list[0][name]
        batch[name + "_bias"] = batch_list[0][name]
    return batch


def get_dataset(args):
    dataset = OrcDataset(
        args.batch_size,
        worker_idx=int(os.environ.get("RANK", 0)),
        worker_num=int(os.environ.get("WORLD_SIZE", 1)),
        read_threads_num=args.thread_num,
        prefetch=args.prefetch,
        is_compressed=False,
        drop_remainder=args.drop_remainder,
        transform_fn=transform_batch,
        dtype=torch.float32,
        device="cpu",
        save_interval=1000,
    )
    dataset.add_paths(args.data_paths.split(","))
    dataset.fixedlen_feature("label", [0.0])
    for name in NUMERIC + CATEGORICAL:
        dataset.varlen_feature(name)
    return dataset


def embedding_options():
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
        features = [Feature(n).add_op(SelectField(n, dim=1)) for n in NUMERIC]
        for name in CATEGORICAL:
            for suffix in ("_emb", "_bias"):
                features.append(Feature(name + suffix).add_op(SelectField(name + suffix)))
        self.feature_engine = FeatureEngine(feature_list=features)
        self.embedding_engine = EmbeddingEngine(embedding_options())
        self.numeric_embs = nn.Parameter(torch.randn(len(NUMERIC), DIM) * 0.01)
        width = (len(NUMERIC) + len(CATEGORICAL)) * DIM
        self.dnn = nn.Sequential(nn.Linear(width, 16), nn.ReLU(), nn.Linear(16, 1))
        self.loss_function = nn.BCELoss()
        self.auc_metric = AUROC(num_thresholds=200, dist_sync_on_step=True)
        self.losses = []

    def forward(self, samples):
        samples = self.embedding_engine(self.feature_engine(samples))
        labels = samples.pop("label")
        batch = labels.shape[0]
        numeric = torch.stack([samples[n] for n in NUMERIC], dim=1)
        categorical = torch.stack([samples[f"{n}_emb"] for n in CATEGORICAL], 1)
        embs = torch.cat([numeric * self.numeric_embs, categorical], dim=1)
        first = torch.stack([samples[f"{n}_bias"] for n in CATEGORICAL], 1).sum(1)
        second = 0.5 * (embs.sum(1) ** 2 - (embs**2).sum(1)).sum(-1, keepdim=True)
        out = torch.sigmoid(first + second + self.dnn(embs.view(batch, -1)))
        loss = self.loss_function(out, labels)
        self.auc_metric.update(out, labels)
        add_metric("auc", self.auc_metric.compute())
        self.losses.append(loss.item())
        return loss


def main():
    parser = ArgumentParser()
    parser.add_arguments(LRConfig, dest="lr")
    parser.add_arguments(TrainingArguments, dest="train_config")
    parser.add_arguments(IOArgs, dest="dataset")
    parser.add_arguments(Output, dest="output")
    args = parser.parse_args()
    torch.manual_seed(0)
    dist.init_process_group()
    model = DeepFM()
    dataset = get_dataset(args.dataset)
    sparse_optim = SparseAdamW(filter_out_sparse_param(model), lr=args.lr.sparse_lr)
    opt = torch.optim.AdamW(params=model.parameters(), lr=args.lr.dense_lr)
    model = model.cpu()
    trainer = Trainer(
        model=model,
        args=args.train_config,
        train_dataset=dataset,
        dense_optimizers=(opt, None),
        sparse_optimizer=sparse_optim,
    )
    if int(os.environ.get("RANK", 0)) == 0:
        output_dir = args.train_config.output_dir
        hooks = [ProfilerHook(wait=1, warmup=1, active=1, repeat=1, output_dir=output_dir)]
        trainer.add_hooks(hooks)
    trainer.train()
    record = {
        "train_config": {k: v for k, v in asdict(args.train_config).items() if k != "model_bank"},
        "dataset": asdict(args.dataset),
        "lr": asdict(args.lr),
        "losses": model.losses,
        "global_step": int(trainer.global_step),
    }
    with open(args.output.result, "w") as f:
        json.dump(record, f)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()

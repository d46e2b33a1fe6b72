"""A runner in the shape of RecIS's seq2seq example: sequences of id lists (string ids hashed
with murmur by the reader), ``SequenceTruncate(n_dims=3)``, the ``mean`` combiner, and a causal
transformer under bf16 autocast trained to find, at each position, the previous item among all
items of the batch.

    torchrun --nproc_per_node 1 seq2seq_runner.py --data_paths=DIR --batch_size=16 ... \
        --output_dir=OUT --hidden_size=32 --result=OUT/result.json

Writes the step losses and the embedding shape to ``--result``.
"""

import json
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from recis.features.feature import Feature
from recis.features.feature_engine import FeatureEngine
from recis.features.op import SelectField, SequenceTruncate
from recis.framework.metrics import add_metric
from recis.framework.trainer import Trainer, TrainingArguments
from recis.io.orc_dataset import OrcDataset
from recis.nn import EmbeddingEngine
from recis.nn.initializers import TruncNormalInitializer
from recis.nn.modules.embedding import EmbeddingOption
from recis.nn.modules.hashtable import filter_out_sparse_param
from recis.optim import SparseAdamW
from recis.utils.parser import ArgumentParser

SEQ_LEN = 8
FEATURE_CONFIG = [
    {"name": "item_id", "emb_dim": 16, "hash_bucket_size": 2048000},
    {"name": "behavior_id", "emb_dim": 16, "hash_type": "murmur", "hash_bucket_size": 0},
]


@dataclass
class IOArgs:
    data_paths: str
    batch_size: int
    thread_num: int
    prefetch: int
    drop_remainder: bool


@dataclass
class ModelConfig:
    hidden_size: int = 32
    nhead: int = 2
    emb_size: int = 32


@dataclass
class Output:
    result: str


def get_dataset(io_args):
    dataset = OrcDataset(
        io_args.batch_size,
        worker_idx=int(os.environ.get("RANK", 0)),
        worker_num=int(os.environ.get("WORLD_SIZE", 1)),
        read_threads_num=io_args.thread_num,
        prefetch=io_args.prefetch,
        is_compressed=False,
        drop_remainder=io_args.drop_remainder,
        transform_fn=[lambda x: x[0]],
        dtype=torch.float32,
        device="cpu",
        save_interval=1000,
    )
    for path in io_args.data_paths.split(","):
        dataset.add_path(path)
    for item in FEATURE_CONFIG:
        dataset.varlen_feature(item["name"], item.get("hash_type"), item["hash_bucket_size"])
    return dataset


class SparseModel(nn.Module):
    def __init__(self):
        super().__init__()
        truncate = dict(seq_len=SEQ_LEN, truncate=True, truncate_side="right", n_dims=3)
        features = [
            Feature(item["name"])
            .add_op(SelectField(item["name"]))
            .add_op(SequenceTruncate(check_length=False, dtype=torch.int64, **truncate))
            for item in FEATURE_CONFIG
        ]
        self.feature_engine = FeatureEngine(feature_list=features)
        options = {
            item["name"]: EmbeddingOption(
                embedding_dim=item["emb_dim"],
                shared_name=item["name"],
                combiner="mean",
                initializer=TruncNormalInitializer(std=0.1),
                device=torch.device("cpu"),
            )
            for item in FEATURE_CONFIG
        }
        self.embedding_engine = EmbeddingEngine(options)

    def forward(self, samples):
        return self.embedding_engine(self.feature_engine(samples))


class Decoder(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.proj = nn.Linear(config.emb_size, config.hidden_size)
        self.attn = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.nhead, self.hidden = config.nhead, config.hidden_size
        self.loss_fn = nn.CrossEntropyLoss()

    def forward(self, x):
        items = self.proj(x)
        batch, seq, _ = items.shape
        q, k, v = (
            t.view(batch, seq, self.nhead, -1).transpose(1, 2)
            for t in self.attn(items).split(self.hidden, dim=2)
        )
        attended = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        preds = items + attended.transpose(1, 2).reshape(batch, seq, self.hidden)
        preds = F.normalize(preds[:, 1:].reshape(-1, self.hidden), dim=-1, eps=1e-6)
        targets = F.normalize(items[:, :-1].reshape(-1, self.hidden), dim=-1, eps=1e-6)
        cos_sim = torch.matmul(preds, targets.t())
        labels = torch.arange(preds.shape[0], dtype=torch.long)
        loss = self.loss_fn(cos_sim, labels)
        add_metric("hit_rate", (cos_sim.argmax(dim=1) == labels).sum() / preds.shape[0])
        add_metric("loss", loss)
        return loss


class Seq2SeqModel(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.sparse = SparseModel()
        self.dense = Decoder(config)
        self.losses, self.emb_shape = [], None

    def forward(self, samples):
        samples = self.sparse(samples)
        emb = torch.cat([samples[item["name"]] for item in FEATURE_CONFIG], dim=-1)
        self.emb_shape = list(emb.shape)
        with torch.amp.autocast(dtype=torch.bfloat16, device_type="cpu"):
            loss = self.dense(emb)
        self.losses.append(loss.item())
        return loss


def main():
    parser = ArgumentParser()
    parser.add_arguments(TrainingArguments, dest="train_config")
    parser.add_arguments(IOArgs, dest="io_args")
    parser.add_arguments(ModelConfig, dest="model_config")
    parser.add_arguments(Output, dest="output")
    args = parser.parse_args()
    torch.manual_seed(0)
    dist.init_process_group()
    model = Seq2SeqModel(args.model_config)
    dense_opt = torch.optim.AdamW(model.parameters(), lr=0.01)
    sparse_opt = SparseAdamW(filter_out_sparse_param(model), lr=0.01)
    trainer = Trainer(
        model=model.cpu(),
        args=args.train_config,
        train_dataset=get_dataset(args.io_args),
        dense_optimizers=(dense_opt, None),
        sparse_optimizer=sparse_opt,
    )
    trainer.train()
    record = {
        "losses": model.losses,
        "emb_shape": model.emb_shape,
        "global_step": int(trainer.global_step),
    }
    with open(args.output.result, "w") as f:
        json.dump(record, f)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()

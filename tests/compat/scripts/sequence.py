"""A sequence model over 3-D ragged inputs (a sequence of id lists per sample), written as
RecIS's seq2seq example writes its sparse part, launched with ``torchrun``.

    torchrun --nproc_per_node 2 sequence.py DATA_DIR OUTPUT_DIR

``SequenceTruncate(n_dims=3)`` keeps the first ``SEQ_LEN`` id lists of each sample and the
``mean`` combiner gives one embedding per list: ``[batch, SEQ_LEN, dim]``. Trains one epoch of
at most 20 steps, then builds a new model and trainer that resume from the checkpoint in
``OUTPUT_DIR`` for a second epoch; each rank writes both runs' step losses, final step,
checkpoint list and sequence shape to ``OUTPUT_DIR/result-<rank>.json``.
"""

import json
import os
import sys

import torch
import torch.distributed as dist
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

SEQ_LEN = 8
SEQUENCES = {"item_seq": 16, "cate_seq": 8}


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
    for name in SEQUENCES:
        dataset.varlen_feature(name)
    return dataset


def features():
    return [
        Feature(name)
        .add_op(SelectField(name))
        .add_op(
            SequenceTruncate(
                seq_len=SEQ_LEN,
                truncate=True,
                truncate_side="right",
                check_length=False,
                n_dims=3,
                dtype=torch.int64,
            )
        )
        for name in SEQUENCES
    ]


def embeddings():
    return {
        name: EmbeddingOption(
            embedding_dim=dim,
            shared_name=name,
            combiner="mean",
            initializer=TruncNormalInitializer(std=0.01),
            device=torch.device("cpu"),
        )
        for name, dim in SEQUENCES.items()
    }


class SequenceModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.feature_engine = FeatureEngine(feature_list=features())
        self.embedding_engine = EmbeddingEngine(embeddings())
        width = sum(SEQUENCES.values())
        self.encoder = nn.GRU(width, 16, batch_first=True)
        self.head = nn.Linear(16, 1)
        self.loss_fn = nn.BCEWithLogitsLoss()
        self.losses, self.seq_shape = [], None

    def forward(self, samples):
        samples = self.embedding_engine(self.feature_engine(samples))
        labels = samples.pop("label")
        seq = torch.cat([samples[name] for name in SEQUENCES], dim=-1)
        self.seq_shape = list(seq.shape)
        _, hidden = self.encoder(seq)
        loss = self.loss_fn(self.head(hidden[-1]), labels)
        add_metric("seq_len", seq.shape[1])
        self.losses.append(loss.item())
        return loss


def train(data_dir, output_dir, train_epoch):
    """Train ``train_epoch`` epochs (resuming from ``output_dir``); this launch's record."""
    torch.manual_seed(0)
    model = SequenceModel()
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
        "seq_shape": model.seq_shape,
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

"""Shared command line of the example trainers: data, model, training, evaluation, outputs.

Flags (absl): ``--backend`` (torch), ``--data`` (a directory of ORC files; empty: generate a
Criteo-shaped dataset of ``--rows`` rows under ``--output_dir``), ``--batch_size``, ``--steps``,
``--eval_steps``, ``--output_dir``, ``--device``, ``--lr``, ``--sparse_lr``, ``--dim``,
``--mixed_precision``, ``--log_steps``, ``--save_steps``, ``--seed``. Training resumes from the
newest checkpoint in ``--output_dir``.
"""

from __future__ import annotations

import os

import torch
from absl import flags

from recis.framework.trainer import Trainer, TrainingArguments
from recis.hooks import PlotHook, TensorBoardHook
from recis.io import OrcDataset
from recis.nn import filter_out_sparse_param
from recis.optim import SparseAdamW
from recis.tools.synthetic import CATEGORICAL, DENSE, write_dataset

FLAGS = flags.FLAGS
flags.DEFINE_enum("backend", "torch", ["torch"], "Framework of the dense model.")
flags.DEFINE_string("data", "", "Directory of training ORC files; empty: generate data.")
flags.DEFINE_string("eval_data", "", "Directory of evaluation ORC files; empty: generate data.")
flags.DEFINE_integer("rows", 200_000, "Rows of generated training data (evaluation: a quarter).")
flags.DEFINE_integer("batch_size", 4096, "Samples per step.")
flags.DEFINE_integer("steps", None, "Training steps in total (default: one pass over the data).")
flags.DEFINE_integer("eval_steps", None, "Evaluation batches (default: all).")
flags.DEFINE_string("output_dir", "runs/example", "Checkpoints, TensorBoard logs and plots.")
flags.DEFINE_enum("device", "cpu", ["cpu", "cuda"], "Where the model trains.")
flags.DEFINE_float("lr", 1e-3, "Learning rate of the dense AdamW.")
flags.DEFINE_float("sparse_lr", 1e-2, "Learning rate of the sparse AdamW.")
flags.DEFINE_integer("dim", 16, "Embedding width.")
flags.DEFINE_enum("mixed_precision", None, ["bf16", "fp16"], "Mixed precision of the forward pass.")
flags.DEFINE_integer("log_steps", 20, "Steps between log lines.")
flags.DEFINE_integer("save_steps", 100, "Steps between checkpoints.")
flags.DEFINE_integer("seed", 0, "Seed of the data generator and the dense initial weights.")


def dataset(path: str, shuffle: bool) -> OrcDataset:
    """Batches of the Criteo-shaped columns, one dict per batch."""
    data = OrcDataset(
        FLAGS.batch_size,
        read_threads_num=2,
        prefetch=2,
        shuffle=shuffle,
        seed=FLAGS.seed,
        transform_fn=[lambda tables: tables[0]],
        device=FLAGS.device,
    )
    data.add_path(path)
    data.fixedlen_feature("label", [0.0])
    for name in DENSE:
        data.fixedlen_feature(name, [0.0])
    for name in CATEGORICAL:
        data.varlen_feature(name)
    return data


def data_directories() -> tuple[str, str]:
    """The training and evaluation directories, generating data where none is given."""
    train, evaluation = FLAGS.data, FLAGS.eval_data
    if not train:
        train = os.path.join(FLAGS.output_dir, "data", "train")
        if not os.path.isdir(train):
            write_dataset(train, rows=FLAGS.rows, files=4, seed=FLAGS.seed)
    if not evaluation:
        evaluation = os.path.join(FLAGS.output_dir, "data", "eval")
        if not os.path.isdir(evaluation):
            write_dataset(evaluation, rows=max(FLAGS.rows // 4, 1), files=1, seed=FLAGS.seed + 1)
    return train, evaluation


def run(build_model) -> dict:
    """Train ``build_model()`` with the flags above, evaluate it and report where outputs are."""
    torch.manual_seed(FLAGS.seed)
    train_dir, eval_dir = data_directories()
    model = build_model()
    if FLAGS.device == "cuda":
        model = model.cuda()
    dense = torch.optim.AdamW(model.parameters(), lr=FLAGS.lr)
    sparse = SparseAdamW(filter_out_sparse_param(model), lr=FLAGS.sparse_lr)
    args = TrainingArguments(
        output_dir=FLAGS.output_dir,
        train_steps=FLAGS.steps,
        eval_steps=FLAGS.eval_steps,
        log_steps=FLAGS.log_steps,
        save_steps=FLAGS.save_steps,
        mixed_precision=FLAGS.mixed_precision,
        seed=FLAGS.seed,
    )
    trainer = Trainer(
        model,
        args,
        train_dataset=dataset(train_dir, shuffle=True),
        eval_dataset=dataset(eval_dir, shuffle=False),
        dense_optimizers=(dense, None),
        sparse_optimizer=sparse,
        data_to_cuda=FLAGS.device == "cuda",
    )
    plot_path = os.path.join(FLAGS.output_dir, "training.png")
    logs = os.path.join(FLAGS.output_dir, "tensorboard")
    trainer.add_hooks([TensorBoardHook(logs), PlotHook(plot_path)])
    trainer.train()
    model.auc.reset()
    result = trainer.evaluate()
    print(f"evaluation: loss {result['loss']:.4f}, AUC {result.get('auc', float('nan')):.4f}")
    print(f"plot: {plot_path}\ntensorboard: tensorboard --logdir {logs}")
    print(f"checkpoints: {FLAGS.output_dir} (newest listed last in its 'checkpoint' file)")
    return result

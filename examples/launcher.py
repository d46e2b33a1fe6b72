"""Shared command line of the example trainers: data, model, training, evaluation, outputs.

Flags (absl): ``--backend`` (``torch`` or ``jax``: the framework of the dense model), ``--data``
(a directory of ORC files; empty: generate a Criteo-shaped dataset of ``--rows`` rows under
``--output_dir``), ``--batch_size``, ``--steps``, ``--eval_steps``, ``--output_dir``,
``--device``, ``--lr``, ``--sparse_lr``, ``--dim``, ``--mixed_precision``, ``--log_steps``,
``--save_steps``, ``--seed``, ``--devices``. Training resumes from the newest checkpoint in
``--output_dir``. The chosen backend alone is imported: a single-process JAX run never loads torch.

``--device=cuda`` (torch backend) trains on the GPU: the dense model, the embedding tables
(``EmbeddingOption(device="cuda")``) and the batches, which the dataset packs in pinned memory and
copies to the GPU while the previous step trains. It stops at once, saying why, where torch sees
no CUDA device or CuPy (``pip install 'recis[cuda]'``) is missing.

``--devices N`` (JAX backend) trains on N local devices of each process: each batch is split over
them, the dense parameters replicated and the embedding tables sharded row-wise over them
(:class:`~recis.backends.jax.DataParallel`). On a CPU host, JAX then makes N host devices
(``--xla_force_host_platform_device_count``).

Launched by ``torchrun --nproc_per_node N``, the script trains on N ranks (either backend): the
tables are sharded over the ranks, the dense model is data-parallel and each rank reads its own
part of the data (``worker_idx=rank``, ``worker_num=N``); rank 0 generates the data and writes
the logs, plots and checkpoint list. With ``--backend jax`` the ranks may instead be started by
``python -m recis.backends.jax.launch --nproc_per_node N`` (or with ``RANK``, ``WORLD_SIZE``,
``MASTER_ADDR`` and ``MASTER_PORT`` set by hand on each host): they then join through
``jax.distributed``, and torch need not be installed.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
from absl import app, flags

from recis.framework.auc import auc_thresholds, confusion_counts, threshold_auc
from recis.framework.metrics import add_metric
from recis.io import OrcDataset
from recis.tools.synthetic import declare_columns, write_dataset

FLAGS = flags.FLAGS
flags.DEFINE_enum("backend", "torch", ["torch", "jax"], "Framework of the dense model.")
flags.DEFINE_string("data", "", "Directory of training ORC files; empty: generate data.")
flags.DEFINE_string("eval_data", "", "Directory of evaluation ORC files; empty: generate data.")
flags.DEFINE_integer("rows", 200_000, "Rows of generated training data (evaluation: a quarter).")
flags.DEFINE_integer("batch_size", 4096, "Samples per step.")
flags.DEFINE_integer("steps", None, "Training steps in total (default: one pass over the data).")
flags.DEFINE_integer("eval_steps", None, "Evaluation batches (default: all).")
flags.DEFINE_string("output_dir", "runs/example", "Checkpoints, TensorBoard logs and plots.")
flags.DEFINE_enum("device", "cpu", ["cpu", "cuda"], "Where the torch model trains.")
flags.DEFINE_float("lr", 1e-3, "Learning rate of the dense AdamW.")
flags.DEFINE_float("sparse_lr", 1e-2, "Learning rate of the sparse AdamW.")
flags.DEFINE_integer("dim", 16, "Embedding width.")
flags.DEFINE_enum("mixed_precision", None, ["bf16", "fp16"], "Mixed precision of the forward pass.")
flags.DEFINE_integer("log_steps", 20, "Steps between log lines.")
flags.DEFINE_integer("save_steps", 100, "Steps between checkpoints.")
flags.DEFINE_integer("seed", 0, "Seed of the data generator and the dense initial weights.")
flags.DEFINE_integer("devices", 1, "Local devices of each process (JAX backend).", lower_bound=1)

DENSE_WEIGHT_DECAY = 0.01  # torch.optim.AdamW's default, used by both backends


def rank_and_world_size() -> tuple[int, int]:
    """This process's rank and the number of ranks (``torchrun`` sets them; else 0 and 1)."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def check_device() -> None:
    """Stop with a usage error when ``--device=cuda`` cannot train here."""
    if FLAGS.device != "cuda" or FLAGS.backend != "torch":
        return
    import torch

    if not torch.cuda.is_available():
        raise app.UsageError("--device=cuda needs a CUDA device, and torch sees none")
    from recis.core.cuda import loader

    try:
        loader.require_cupy("--device=cuda")
    except ImportError as error:
        raise app.UsageError(str(error)) from None


def use_host_devices() -> None:
    """Ask JAX for ``--devices`` CPU devices (on a CPU host it has one); before JAX starts."""
    if FLAGS.backend != "jax" or FLAGS.devices == 1:
        return
    flag = f"--xla_force_host_platform_device_count={FLAGS.devices}"
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flag}".strip()


def data_parallel():
    """The JAX ``DataParallel`` over ``--devices`` local devices, or None for one device."""
    if FLAGS.devices == 1:
        return None
    import jax
    from jax.sharding import Mesh

    from recis.backends.jax import DataParallel

    devices = jax.local_devices()
    if len(devices) < FLAGS.devices:
        raise app.UsageError(f"--devices={FLAGS.devices}, but JAX sees {len(devices)} devices")
    return DataParallel(Mesh(np.array(devices[: FLAGS.devices]), ("data",)))


def uses_jax_distributed() -> bool:
    """Whether the ranks join through ``jax.distributed``: a JAX run not started by
    ``torchrun`` (which sets ``TORCHELASTIC_RUN_ID``) does."""
    return FLAGS.backend == "jax" and "TORCHELASTIC_RUN_ID" not in os.environ


def start_ranks() -> None:
    """Join the other ranks: through ``jax.distributed`` (:func:`uses_jax_distributed`), else
    ``torch.distributed`` (gloo on CPU, NCCL on GPU); nothing alone."""
    rank, world_size = rank_and_world_size()
    if world_size == 1:
        return
    if uses_jax_distributed():
        from recis.backends.jax import distributed

        distributed.initialize()
        return
    import torch.distributed as dist

    if FLAGS.device == "cuda":
        import torch

        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", rank)))
    dist.init_process_group("nccl" if FLAGS.device == "cuda" else "gloo")


def stop_ranks() -> None:
    """Leave the process group (nothing alone), once the training objects are gone."""
    if rank_and_world_size()[1] > 1 and uses_jax_distributed():
        from recis.backends.jax import distributed

        distributed.shutdown()
    elif rank_and_world_size()[1] > 1:
        from recis.backends.torch.communicator import end_process_group

        end_process_group()  # collects the trainers' cycles first; skipped after a failure


def barrier() -> None:
    """Wait for every rank (nothing alone)."""
    if rank_and_world_size()[1] > 1 and uses_jax_distributed():
        from recis.distributed.world import default_communicator

        default_communicator().barrier("barrier after writing the data")
    elif rank_and_world_size()[1] > 1:
        import torch.distributed as dist

        dist.barrier()


def dataset(path: str, shuffle: bool, output: str = "torch", prepare=None) -> OrcDataset:
    """Batches of the Criteo-shaped columns, one dict per batch (``prepare``d if given); under
    several ranks, this rank's part of them."""
    transforms = [lambda tables: tables[0], *([prepare] if prepare is not None else [])]
    rank, world_size = rank_and_world_size()
    data = OrcDataset(
        FLAGS.batch_size,
        worker_idx=rank,
        worker_num=world_size,
        read_threads_num=2,
        prefetch=2,
        shuffle=shuffle,
        seed=FLAGS.seed,
        transform_fn=transforms,
        device=FLAGS.device if output == "torch" else "cpu",
        output=output,
    )
    data.add_path(path)
    declare_columns(data)
    return data


def data_directories() -> tuple[str, str]:
    """The training and evaluation directories, generating data (on rank 0) where none is
    given."""
    train, evaluation = FLAGS.data, FLAGS.eval_data
    writer = rank_and_world_size()[0] == 0
    if not train:
        train = os.path.join(FLAGS.output_dir, "data", "train")
        if writer and not os.path.isdir(train):
            write_dataset(train, rows=FLAGS.rows, files=4, seed=FLAGS.seed)
    if not evaluation:
        evaluation = os.path.join(FLAGS.output_dir, "data", "eval")
        if writer and not os.path.isdir(evaluation):
            write_dataset(evaluation, rows=max(FLAGS.rows // 4, 1), files=4, seed=FLAGS.seed + 1)
    barrier()
    return train, evaluation


def training_arguments(arguments_class):
    """The flags as the backend's ``TrainingArguments``."""
    return arguments_class(
        output_dir=FLAGS.output_dir,
        train_steps=FLAGS.steps,
        exact_steps=True,  # --steps counts steps in total
        eval_steps=FLAGS.eval_steps,
        log_steps=FLAGS.log_steps,
        save_steps=FLAGS.save_steps,
        mixed_precision=FLAGS.mixed_precision,
        seed=FLAGS.seed,
    )


def run(builders: dict[str, Callable]) -> dict:
    """Train the model that ``builders[FLAGS.backend]()`` builds with the flags above, evaluate
    it and report where the outputs are."""
    check_device()
    use_host_devices()
    start_ranks()
    train_dir, eval_dir = data_directories()
    if FLAGS.backend == "jax":
        trainer, tables, reset_auc = _jax_trainer(builders["jax"], train_dir, eval_dir)
    else:
        trainer, tables, reset_auc = _torch_trainer(builders["torch"], train_dir, eval_dir)
    result = _train_and_evaluate(trainer, tables, reset_auc)
    del trainer, tables, reset_auc
    stop_ranks()
    return result


def _torch_trainer(build_model, train_dir: str, eval_dir: str):
    import torch

    from recis.framework.trainer import Trainer, TrainingArguments
    from recis.nn import filter_out_sparse_param
    from recis.optim import SparseAdamW

    torch.manual_seed(FLAGS.seed)
    model = build_model()
    if FLAGS.device == "cuda":
        model = model.cuda()
    dense = torch.optim.AdamW(model.parameters(), lr=FLAGS.lr, weight_decay=DENSE_WEIGHT_DECAY)
    sparse = SparseAdamW(filter_out_sparse_param(model), lr=FLAGS.sparse_lr)
    trainer = Trainer(
        model,
        training_arguments(TrainingArguments),
        train_dataset=dataset(train_dir, shuffle=True),
        eval_dataset=dataset(eval_dir, shuffle=False),
        dense_optimizers=(dense, None),
        sparse_optimizer=sparse,
        data_to_cuda=FLAGS.device == "cuda",
    )
    return trainer, None, model.auc.reset


def _jax_trainer(build_model, train_dir: str, eval_dir: str):
    import optax

    from recis.backends.jax import SparseOptimizer, rules
    from recis.backends.jax.flax import sparse_layers
    from recis.backends.jax.trainer import Trainer, TrainingArguments

    model = build_model()
    layers = sparse_layers(model)
    prepare = getattr(model, "prepare_batch", None)
    auc = StreamingAuc()
    trainer = Trainer(
        model,
        training_arguments(TrainingArguments),
        train_dataset=dataset(train_dir, shuffle=True, output="numpy", prepare=prepare),
        eval_dataset=dataset(eval_dir, shuffle=False, output="numpy", prepare=prepare),
        dense_optimizer=optax.adamw(FLAGS.lr, weight_decay=DENSE_WEIGHT_DECAY),
        sparse_optimizer=SparseOptimizer(layers, rules.AdamW(), FLAGS.sparse_lr),
        metrics_fn=auc,
        mesh=data_parallel(),
    )
    auc.communicator = trainer.communicator
    tables = [table for layer in layers for table in layer.tables.values()]
    return trainer, tables, auc.reset


def _train_and_evaluate(trainer, tables: list | None, reset_auc: Callable[[], None]) -> dict:
    from recis.hooks import PlotHook, TensorBoardHook

    plot_path = os.path.join(FLAGS.output_dir, "training.png")
    logs = os.path.join(FLAGS.output_dir, "tensorboard")
    trainer.add_hooks([TensorBoardHook(logs, tables=tables), PlotHook(plot_path)])
    trainer.train()
    reset_auc()
    result = trainer.evaluate()
    if rank_and_world_size()[0] == 0:
        print(f"evaluation: loss {result['loss']:.4f}, AUC {result.get('auc', float('nan')):.4f}")
        print(f"plot: {plot_path}\ntensorboard: tensorboard --logdir {logs}")
        print(f"checkpoints: {FLAGS.output_dir} (newest listed last in its 'checkpoint' file)")
    return result


class StreamingAuc:
    """The JAX models' training and evaluation AUC: threshold AUC (200 thresholds, as the torch
    models' ``AUROC``) over every sample of every rank since the last :meth:`reset`, reported as
    ``auc``."""

    def __init__(self) -> None:
        self.thresholds = auc_thresholds(200)
        self.communicator = None  # the ranks' communicator, set on several ranks
        self.reset()

    def reset(self) -> None:
        self.counts = np.zeros((4, self.thresholds.size), np.int64)  # tp, fp, tn, fn

    def __call__(self, probabilities: np.ndarray, batch: dict) -> None:
        counts = confusion_counts(probabilities, batch["label"], self.thresholds)
        if self.communicator is not None:  # every rank's samples (a collective)
            counts = self.communicator.all_reduce(counts, "sum", "all-reduce of AUC counts")
        self.counts += counts
        add_metric("auc", threshold_auc(self.counts))

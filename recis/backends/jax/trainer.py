"""``Trainer`` and ``TrainingArguments`` for JAX: the torch front end's training loop, for a Flax
NNX model over RecIS embeddings.

The loop is the torch ``Trainer``'s: each *step* consumes one batch; the step limit is checked
before a batch is taken; epochs, evaluation, hooks (``after_step(metrics, global_step)`` with
``loss``, ``epoch``, ``batch_size``, ``step_seconds`` and the metrics reported through
:func:`~recis.framework.metrics.add_metric`), checkpoints every ``save_steps`` steps and at the
end, resume from the newest checkpoint in ``output_dir`` or a warm start from ``model_bank``.
Checkpoints have the torch front end's format (:mod:`recis.backends.jax.checkpoint`), so hash
tables load across front ends, and a resumed run ends bit-identical to an uninterrupted one.

The model is an NNX module holding :class:`~recis.backends.jax.flax.SparseEmbedding` layers.
``loss_fn(model, batch) -> (per_example_loss, outputs)`` runs under ``jit`` (default: the model's
own ``__call__`` returns that pair). Since ``jit`` cannot report metrics, ``metrics_fn(outputs,
batch)`` runs after each training and evaluation step, outside ``jit``, with the outputs trimmed to
the batch's real samples (floats as float32 NumPy arrays); it may call ``add_metric``.

Gradient accumulation wraps the dense optimizer in ``optax.MultiSteps`` (the mean gradient of
``gradient_accumulation_steps`` steps) and needs a sparse optimizer built with the same
``accumulation_steps``. Mixed precision: ``"bf16"`` computes in bfloat16, ``"fp16"`` in float16
with dynamic loss scaling (a step with non-finite gradients is skipped, dense and sparse alike).

Launched on several ranks (``jax.distributed`` or ``torch.distributed`` initialised), the model's
tables are sharded over the ranks and its dense gradients averaged
(:class:`~recis.backends.jax.TrainStep`); the loop then agrees on the end of the data, logs the
loss averaged over ranks and tells the other ranks when one fails
(:class:`~recis.framework.loop.TrainingLoop`). Within a process, ``mesh`` (a
:class:`~recis.backends.jax.mesh.DataParallel`) splits each batch over local devices; sparse
layers built with the same mesh shard their tables over those devices.

>>> import tempfile, numpy as np, optax
>>> from flax import nnx
>>> from recis.backends.jax import EmbeddingOption, SparseOptimizer, rules
>>> from recis.backends.jax.flax import SparseEmbedding
>>> class Model(nnx.Module):
...     def __init__(self):
...         self.embedding = SparseEmbedding({"f": EmbeddingOption(4, shared_name="f")})
...         self.linear = nnx.Linear(4, 1, rngs=nnx.Rngs(0))
...     def __call__(self, batch):
...         logits = self.linear(self.embedding(batch)["f"])[:, 0]
...         return optax.sigmoid_binary_cross_entropy(logits, batch["label"]), logits
>>> model = Model()
>>> data = [{"f": np.array([1, 2]), "label": np.array([1.0, 0.0], np.float32)}] * 3
>>> args = TrainingArguments(output_dir=tempfile.mkdtemp(), log_steps=100)
>>> trainer = Trainer(model, args, data, data, dense_optimizer=optax.adam(0.01),
...                   sparse_optimizer=SparseOptimizer(model.embedding, rules.Adam(), 0.01))
>>> trainer.train()  # doctest: +ELLIPSIS
[...] [INFO] [recis.framework.loop] starting from step 0: no checkpoint in '...'
>>> result = trainer.evaluate()  # doctest: +ELLIPSIS
[...] [INFO] [recis.hooks.LoggerHook] evaluation | loss ...  steps 3
>>> trainer.global_step, sorted(result)
(3, ['loss', 'steps'])
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from recis.backends.jax.buckets import BatchBuckets
from recis.backends.jax.checkpoint import CheckpointManager
from recis.backends.jax.eval_step import NnxEvalStep
from recis.backends.jax.flax import nnx_train_step, sparse_layers
from recis.backends.jax.mesh import DataParallel
from recis.backends.jax.optim import SparseOptimizer, rules
from recis.backends.jax.precision import DynamicLossScale, Policy
from recis.backends.jax.train import _batch_size
from recis.framework.arguments import TrainingArguments
from recis.framework.loop import TrainingLoop
from recis.framework.metrics import (
    clear_global_metrics,
    get_global_metrics,
    scalar_metrics,
    single_values,
)
from recis.hooks.logger_hook import LoggerHook


class Trainer(TrainingLoop):
    """Trains the NNX ``model`` on ``train_dataset`` (see the module docstring).

    Args:
        model: an NNX module with :class:`~recis.backends.jax.flax.SparseEmbedding` layers.
        args: :class:`TrainingArguments`.
        train_dataset, eval_dataset: iterables of batches (RecIS datasets with
            ``output="numpy"``, or any iterable; ``(is_end, batch)`` pairs are unwrapped).
        hooks: extra hooks; a ``LoggerHook(args.log_steps)`` is added.
        dense_optimizer: an optax transformation of the model's parameters (None: frozen).
        sparse_optimizer: the :class:`~recis.backends.jax.SparseOptimizer` of the model's tables.
        loss_fn: ``(model, batch) -> (per_example_loss, outputs)``, default ``model(batch)``.
        metrics_fn: ``(outputs, batch) -> None``, run outside ``jit`` after every step.
        buckets: the padded batch sizes of training (default: adaptive).
        mesh: a :class:`~recis.backends.jax.mesh.DataParallel` splitting each training batch
            over this process's devices (default: the first device). Build the model's
            :class:`~recis.backends.jax.flax.SparseEmbedding` layers with the same mesh to
            shard their tables over those devices too.
    """

    def __init__(
        self,
        model: nnx.Module,
        args: TrainingArguments | None = None,
        train_dataset=None,
        eval_dataset=None,
        hooks: list | None = None,
        dense_optimizer: optax.GradientTransformation | None = None,
        sparse_optimizer: SparseOptimizer | None = None,
        loss_fn: Callable | None = None,
        metrics_fn: Callable | None = None,
        buckets: BatchBuckets | None = None,
        mesh: DataParallel | None = None,
    ) -> None:
        self.model = model
        self.args = args if args is not None else TrainingArguments()
        self.train_dataset = train_dataset
        self.eval_dataset = eval_dataset
        self.metrics_fn = metrics_fn
        self.hooks: list = [LoggerHook(self.args.log_steps), *(hooks or [])]
        accumulation = self.args.gradient_accumulation_steps
        if self.args.save_steps > 0 and self.args.save_steps % accumulation:
            raise ValueError("save_steps must be a multiple of gradient_accumulation_steps")
        loss_fn = loss_fn if loss_fn is not None else _call_model
        policy, loss_scale = _precision(self.args.mixed_precision)
        model.train()
        self.train_step = nnx_train_step(
            model, loss_fn, _dense_optimizer(dense_optimizer, accumulation),
            _sparse_optimizer(model, sparse_optimizer, accumulation),
            policy=policy, loss_scale=loss_scale, buckets=buckets, has_aux=True, mesh=mesh,
        )  # fmt: skip
        self.communicator = self.train_step.communicator
        self.step_loss_is_global = True  # the train step averages the loss over ranks
        self.eval_step = NnxEvalStep(model, loss_fn, policy=policy)
        self.checkpoint_manager = CheckpointManager(
            self.args.output_dir,
            self.train_step,
            dataset=train_dataset if hasattr(train_dataset, "state_dict") else None,
            save_steps=self.args.save_steps,
            max_to_keep=self.args.max_to_keep,
            parallel=self.args.save_concurrency_per_rank,
        )
        self.start_loop()

    @property
    def sparse_optimizer(self) -> SparseOptimizer:
        return self.train_step.sparse_optimizer

    @property
    def loss_scale(self) -> DynamicLossScale | None:
        return self.train_step.loss_scale

    def prepare_training(self) -> None:
        """Nothing to switch: the jitted step always trains the model in training mode."""

    def run_step(self, batch) -> dict:
        clear_global_metrics()
        start = time.perf_counter()
        out = self.train_step(batch)
        if not out.applied and self.loss_scale is None:
            self.nonfinite_step()  # nothing of the step was applied; raise or count it
        self._report(out.aux, batch)
        metrics = {"loss": out.loss, **single_values(get_global_metrics())}
        if all(device.platform == "cpu" for device in out.loss.devices()):
            metrics = scalar_metrics(metrics)  # on a GPU, hooks read them when they report
        metrics["step_seconds"] = time.perf_counter() - start
        metrics["batch_size"] = _batch_size(batch)
        return metrics

    def evaluation(self):
        """Nothing to set up: the evaluation step runs the model in evaluation mode."""
        return contextlib.nullcontext()

    def evaluate_batch(self, batch) -> float:
        loss, outputs = self.eval_step(batch)
        self._report(outputs, batch)
        return float(loss)

    def _report(self, outputs, batch) -> None:
        if self.metrics_fn is not None:
            self.metrics_fn(_trimmed(outputs, _batch_size(batch)), batch)


def _call_model(model, batch):
    return model(batch)


def _precision(mixed_precision: str | None) -> tuple[Policy | None, DynamicLossScale | None]:
    if mixed_precision == "bf16":
        return Policy.bf16(), None
    if mixed_precision == "fp16":
        return Policy.fp16(), DynamicLossScale.create()
    return None, None


def _dense_optimizer(optimizer, accumulation: int) -> optax.GradientTransformation:
    """The dense optimizer (frozen parameters without one), averaging ``accumulation`` steps'
    gradients."""
    optimizer = optimizer if optimizer is not None else optax.set_to_zero()
    return optax.MultiSteps(optimizer, accumulation) if accumulation > 1 else optimizer


def _sparse_optimizer(model, optimizer, accumulation: int) -> SparseOptimizer:
    """The sparse optimizer, checked against the model's tables and the accumulation."""
    if optimizer is None:
        if sparse_layers(model):
            raise ValueError("Trainer: the model has sparse layers and needs a sparse_optimizer")
        return SparseOptimizer([], rules.SGD(), 0.0)
    if optimizer.accumulation_steps != accumulation:
        raise ValueError(
            f"the sparse optimizer accumulates {optimizer.accumulation_steps} steps, the "
            f"arguments {accumulation}: build it with accumulation_steps={accumulation}"
        )
    return optimizer


def _trimmed(outputs, num_samples: int):
    """``outputs`` as NumPy arrays, per-example leaves cut to the real samples, floats as
    float32."""

    def trim(leaf):
        leaf = leaf[:num_samples] if jnp.ndim(leaf) else leaf
        if jnp.issubdtype(leaf.dtype, jnp.floating):
            leaf = leaf.astype(jnp.float32)
        return np.asarray(leaf)

    return jax.tree.map(trim, outputs)

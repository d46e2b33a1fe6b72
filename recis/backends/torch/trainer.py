"""``Trainer`` and ``TrainingArguments``: RecIS's training loop, on CPU or GPU, with or without
``torch.distributed``.

The model's ``forward(batch)`` returns the loss. Each *step* consumes one batch: forward,
backward, and — every ``gradient_accumulation_steps`` steps — the dense optimizer (and LR
scheduler) and the sparse optimizer update with the mean gradient of the accumulated batches.
Metrics given to :func:`recis.framework.metrics.add_metric` during the step reach the hooks with
the loss: as floats on the CPU, as 0-d tensors on a GPU, so that a step never waits for it (hooks
read them when they report). Checkpoints are written every ``save_steps`` steps and at the end;
:meth:`Trainer.train` first resumes from the newest checkpoint in ``output_dir`` (or warm-starts
from ``model_bank``), so a killed run continues exactly where its last checkpoint was taken.

Under torch.distributed with several ranks (launched with ``torchrun``), the tables are sharded over
the ranks and the dense parameters are data-parallel: the model runs wrapped in
``DistributedDataParallel`` (gradient synchronisation skipped on accumulation micro-steps), each
rank reading its own shard of the data (``worker_idx=rank, worker_num=world_size``).

Mixed precision: ``mixed_precision="bf16"`` runs the forward pass under ``torch.autocast``;
``"fp16"`` adds dynamic loss scaling (dense and sparse gradients are unscaled together, and a
step with overflowing gradients is skipped).
"""

from __future__ import annotations

import contextlib
import time

import torch
from torch import nn

from recis.backends.torch.checkpoint import CheckpointManager
from recis.backends.torch.communicator import default_communicator
from recis.backends.torch.optim.sparse_optimizer import SparseOptimizer
from recis.backends.torch.ragged import RaggedTensor
from recis.framework.arguments import TrainingArguments
from recis.framework.loop import TrainingLoop
from recis.framework.loss_scale import DynamicLossScale
from recis.framework.metrics import (
    clear_global_metrics,
    get_global_metrics,
    scalar_metrics,
    single_values,
)
from recis.hooks import Hook, LoggerHook


class Trainer(TrainingLoop):
    """Trains ``model`` on ``train_dataset`` (see the module docstring).

    Args:
        model: an ``nn.Module`` whose ``forward(batch)`` returns the loss.
        args: :class:`TrainingArguments`.
        train_dataset, eval_dataset: iterables of batches (RecIS datasets or any iterable;
            ``(is_end, batch)`` pairs are unwrapped).
        hooks: extra :class:`~recis.hooks.Hook` s; a ``LoggerHook(args.log_steps)`` is added.
        dense_optimizers: ``(optimizer, lr_scheduler)``, either may be None.
        sparse_optimizer: a :class:`~recis.optim.SparseOptimizer` over the model's tables.
        data_to_cuda: move batches to the current GPU.
        ddp_find_unused_parameters, ddp_broadcast_buffers, ddp_gradient_as_bucket_view,
            ddp_bucket_cap_mb, ddp_static_graph: ``DistributedDataParallel``'s options
            (RecIS's defaults: unused parameters are looked for, buffers broadcast).
        saver: RecIS's positional slot; a saver of one's own is not supported (checkpoints
            are the ``CheckpointManager``'s).
    """

    def __init__(
        self,
        model: nn.Module,
        args: TrainingArguments | None = None,
        train_dataset=None,
        eval_dataset=None,
        hooks: list[Hook] | None = None,
        dense_optimizers=(None, None),
        sparse_optimizer: SparseOptimizer | None = None,
        data_to_cuda: bool = False,
        ddp_find_unused_parameters: bool = True,
        ddp_broadcast_buffers: bool = True,
        saver=None,
        ddp_gradient_as_bucket_view: bool = False,
        ddp_bucket_cap_mb: int = 25,
        ddp_static_graph: bool = False,
        **_accelerator_kwargs,
    ) -> None:
        if saver is not None:
            raise NotImplementedError(
                "Trainer(saver=...): checkpoints are written by the Trainer's own "
                "CheckpointManager in args.output_dir"
            )
        self.ddp_options = {
            "find_unused_parameters": ddp_find_unused_parameters,
            "broadcast_buffers": ddp_broadcast_buffers,
            "gradient_as_bucket_view": ddp_gradient_as_bucket_view,
            "bucket_cap_mb": ddp_bucket_cap_mb,
            "static_graph": ddp_static_graph,
        }
        self.model = model
        self.args = args if args is not None else TrainingArguments()
        self.train_dataset = train_dataset
        self.eval_dataset = eval_dataset
        self.dense_optimizer, self.lr_scheduler = dense_optimizers
        self.sparse_optimizer = sparse_optimizer
        self.data_to_cuda = data_to_cuda
        self.hooks: list[Hook] = [LoggerHook(self.args.log_steps), *(hooks or [])]
        self.loss_scale = DynamicLossScale() if self.args.mixed_precision == "fp16" else None
        accumulation = self.args.gradient_accumulation_steps
        if self.args.save_steps > 0 and self.args.save_steps % accumulation:
            raise ValueError("save_steps must be a multiple of gradient_accumulation_steps")
        if sparse_optimizer is not None:
            sparse_optimizer.set_grad_accum_steps(accumulation)
        self.checkpoint_manager = CheckpointManager(
            self.args.output_dir,
            model,
            dense_optimizer=self.dense_optimizer,
            lr_scheduler=self.lr_scheduler,
            sparse_optimizer=sparse_optimizer,
            dataset=train_dataset if hasattr(train_dataset, "state_dict") else None,
            save_steps=self.args.save_steps,
            max_to_keep=self.args.max_to_keep,
            parallel=self.args.save_concurrency_per_rank,
            allow_pickle=self.args.allow_pickle,
        )
        if self.loss_scale is not None:
            self.checkpoint_manager.register_for_checkpointing("loss_scale", self.loss_scale)
        self.communicator = default_communicator()
        self.training_model = self._data_parallel(model)
        self.start_loop()

    def _data_parallel(self, model: nn.Module) -> nn.Module:
        """``model`` wrapped in DDP when there are several ranks and dense parameters."""
        if self.communicator is None or not any(p.requires_grad for p in model.parameters()):
            return model
        return nn.parallel.DistributedDataParallel(model, **self.ddp_options)

    def prepare_training(self) -> None:
        self.model.train()

    def run_step(self, batch) -> dict:
        batch = self._to_device(batch)
        clear_global_metrics()
        start = time.perf_counter()
        boundary = (self.global_step + 1) % self.args.gradient_accumulation_steps == 0
        with self._autocast(), self._gradient_sync(boundary):
            loss = self.training_model(batch)
            scale = self.loss_scale.scale if self.loss_scale is not None else 1.0
            (loss * scale if scale != 1.0 else loss).backward()
        if boundary:
            self._update(scale, loss.detach())
        else:
            self._count_sparse_micro_step()
        metrics = {"loss": loss.detach(), **single_values(get_global_metrics())}
        if loss.device.type == "cpu":
            metrics = scalar_metrics(metrics)  # on a GPU, hooks read them when they report
        metrics["step_seconds"] = time.perf_counter() - start
        metrics["batch_size"] = _batch_size(batch)
        return metrics

    def _update(self, scale: float, loss: torch.Tensor) -> None:
        """Apply the accumulated gradients of dense and sparse parameters, unless the loss or any
        gradient is not finite: then nothing is applied (an fp16 overflow lowers the scale;
        otherwise :meth:`nonfinite_step` raises or counts the step)."""
        divisor = scale * self.args.gradient_accumulation_steps
        dense = [p for p in self.model.parameters() if p.grad is not None]
        for parameter in dense:
            parameter.grad.div_(divisor)
        if self.sparse_optimizer is not None and scale != 1.0:
            self.sparse_optimizer.unscale_grads(scale)
        finite = self.all_ranks_finite(self._locally_finite(loss, dense))
        apply = finite if self.loss_scale is None else self.loss_scale.update(finite)
        if apply and self.dense_optimizer is not None:
            self.dense_optimizer.step()
            if self.lr_scheduler is not None:
                self.lr_scheduler.step()
        if self.sparse_optimizer is not None:
            if apply:
                self.sparse_optimizer.step()
            else:
                self.sparse_optimizer.skip_step()
        self.model.zero_grad(set_to_none=True)
        if not finite and self.loss_scale is None:
            self.nonfinite_step()

    def _locally_finite(self, loss: torch.Tensor, dense: list[torch.Tensor]) -> bool:
        """Whether this rank's loss, dense gradients and sparse gradients are all finite: the
        checks of every tensor are reduced on their device and read once (on a GPU, the step's
        one wait for the device)."""
        checks = [torch.isfinite(loss).all(), *(torch.isfinite(p.grad).all() for p in dense)]
        if self.sparse_optimizer is not None:
            flags = self.sparse_optimizer.local_finite_flags()
            checks += [flag.to(loss.device, non_blocking=True) for flag in flags]
        return bool(torch.stack(checks).all())

    def _gradient_sync(self, boundary: bool):
        """DDP synchronises dense gradients only on the step that applies them."""
        if boundary or self.training_model is self.model:
            return contextlib.nullcontext()
        return self.training_model.no_sync()

    def _count_sparse_micro_step(self) -> None:
        if self.sparse_optimizer is not None:
            self.sparse_optimizer.step()  # counts the micro-step; updates at the boundary

    @contextlib.contextmanager
    def evaluation(self):
        """Evaluation mode and no gradients; training mode again afterwards."""
        self.model.eval()
        try:
            with torch.no_grad():
                yield
        finally:
            self.model.train()

    def evaluate_batch(self, batch) -> float:
        with self._autocast():
            return float(self.model(self._to_device(batch)))

    def _autocast(self):
        if self.args.mixed_precision is None:
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.args.mixed_precision == "bf16" else torch.float16
        return torch.autocast(self._device_type(), dtype=dtype)

    def _device_type(self) -> str:
        """Where the model computes: ``"cuda"`` with ``data_to_cuda`` or CUDA parameters."""
        if self.data_to_cuda:
            return "cuda"
        parameter = next(self.model.parameters(), None)
        return parameter.device.type if parameter is not None else "cpu"

    def _to_device(self, batch):
        return _to_current_gpu(batch) if self.data_to_cuda else batch


def _to_current_gpu(value):
    """``value`` with its tensors (and ``RaggedTensor``\\ s) copied to the current GPU, through
    dicts and lists; tensors already there are not copied. From pinned memory the copies are
    asynchronous."""
    if isinstance(value, dict):
        return {key: _to_current_gpu(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_to_current_gpu(item) for item in value]
    return value.cuda(non_blocking=True) if hasattr(value, "cuda") else value


def _batch_size(batch) -> int | None:
    values = batch.values() if isinstance(batch, dict) else []
    for value in values:
        if isinstance(value, RaggedTensor):  # its shape reads the longest row (a GPU would wait)
            return value.offsets()[0].shape[0] - 1
        shape = getattr(value, "shape", None)
        if shape:
            return int(shape[0])
    return None

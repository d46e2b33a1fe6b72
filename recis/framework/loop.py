"""``TrainingLoop``: the training loop both trainers share (steps, epochs, hooks, checkpoints).

A subclass builds ``args`` (:class:`~recis.framework.arguments.TrainingArguments`), ``hooks``,
``train_dataset`` and a ``checkpoint_manager`` (with ``step``/``save``/``restore``/
``load_model_bank``/``register_for_checkpointing``, ``global_step`` and ``directory``), calls
:meth:`start_loop`, and implements :meth:`run_step` (one batch → its metrics),
:meth:`prepare_training`, :meth:`evaluation` (the context evaluation runs in) and
:meth:`evaluate_batch` (one batch → its loss, without training).

Each *step* consumes one batch. ``train()`` runs epochs as RecIS does: ``args.train_epoch`` of
them, each ending at the end of the data or after ``args.train_steps`` steps, when the dataset is
reset (``reset()``) so that the next epoch reads from the start; with ``args.exact_steps``,
``train_steps`` is the global step to reach. The step limit is checked before a batch is taken,
so the data position saved with a checkpoint is exactly after the last batch trained on.

With several ranks (``communicator`` set by the subclass), every step first agrees that every rank
has a batch — an epoch ends for all ranks when the first one runs out, so nobody waits forever in a
collective — the logged loss is the mean over ranks, and a rank that raises tells the others, whose
next collective then fails naming it.
"""

from __future__ import annotations

import abc
import contextlib
import warnings

import numpy as np

from recis.core.errors import NonFiniteGradientError
from recis.distributed.communicator import CollectiveError, Communicator
from recis.framework.arguments import batches
from recis.framework.metrics import clear_global_metrics, get_global_metrics, scalar_metrics
from recis.utils.logger import Logger

_END = object()
LOG = Logger("recis.framework.loop")


class TrainingLoop(abc.ABC):
    """The loop of ``train()``; see the module docstring for what subclasses provide."""

    communicator: Communicator | None = None  # the ranks' collectives, None in one process
    step_loss_is_global = False  # run_step already reports the mean loss over ranks

    def start_loop(self) -> None:
        """Set up the loop's own state; call once the checkpoint manager exists."""
        self.checkpoint_manager.register_for_checkpointing("trainer", self)
        self.epoch = 0
        self.epoch_steps = 0  # steps of the current epoch
        self.skipped_steps = 0  # steps dropped for non-finite values (on_nonfinite="skip")
        self._restored = False

    @abc.abstractmethod
    def run_step(self, batch) -> dict:
        """Train on ``batch``; return its metrics (at least ``loss`` and ``batch_size``)."""

    @abc.abstractmethod
    def prepare_training(self) -> None:
        """Called at the start of :meth:`train` (e.g. to switch the model to training mode)."""

    @abc.abstractmethod
    def evaluation(self) -> contextlib.AbstractContextManager:
        """The context of :meth:`evaluate` (e.g. evaluation mode, no gradients)."""

    @abc.abstractmethod
    def evaluate_batch(self, batch) -> float:
        """The loss of ``batch``, without training or inserting ids; may report metrics."""

    def add_hooks(self, hooks: list) -> None:
        self.hooks.extend(hooks)

    def add_hook(self, hook) -> None:
        self.hooks.append(hook)

    @property
    def global_step(self) -> int:
        return self.checkpoint_manager.global_step

    def restore(self) -> None:
        """Resume from the newest intact checkpoint, else warm-start from ``model_bank`` (once);
        the decision is logged (see :meth:`CheckpointManagerBase.restore`).

        Hooks that keep state (``state_dict``/``load_state_dict``) are saved and restored too.
        """
        if self._restored:
            return
        self._restored = True
        for index, hook in enumerate(self.hooks):
            if hasattr(hook, "state_dict"):
                name = f"hook.{index}.{type(hook).__name__}"
                self.checkpoint_manager.register_for_checkpointing(name, hook)
        manager = self.checkpoint_manager
        if manager.restore():
            LOG.info_rank0(f"resuming from step {manager.global_step} ({manager.restored_from})")
        elif self.args.model_bank:
            LOG.info_rank0(
                f"starting from step 0, warm-started from the model bank: no checkpoint in "
                f"{str(manager.directory.root)!r}"
            )
            manager.load_model_bank(self.args.model_bank)
        else:
            LOG.info_rank0(
                f"starting from step 0: no checkpoint in {str(manager.directory.root)!r}"
            )

    def train(self, train_steps: int | None = None) -> None:
        """Train ``args.train_epoch`` epochs of at most ``train_steps`` steps each (default
        ``args.train_steps``), as RecIS; with ``args.exact_steps``, until the global step
        reaches ``train_steps``. Then save a checkpoint (when a step was trained). Data that
        yields no batch is warned about."""
        with self._failures_reported():
            if self.args.exact_steps:
                self._train(train_steps)
            else:
                self._train_epochs(train_steps)

    @contextlib.contextmanager
    def _failures_reported(self):
        """Tell the other ranks when this one raises (their collectives then name it)."""
        try:
            yield
        except BaseException as error:
            if self.communicator is not None and not isinstance(error, CollectiveError):
                self.communicator.report_failure(error)
            raise

    def _train(self, train_steps: int | None) -> None:
        self.restore()
        limit = train_steps if train_steps is not None else self.args.train_steps
        self._start_training(limit)
        first_step = self.global_step
        epochs_left = self.args.train_epoch
        while self.global_step < limit if limit is not None else epochs_left > 0:
            self.call_hooks("before_epoch", self.epoch)
            steps, completed = self._train_epoch(limit)
            if not completed:
                break  # the step limit was reached inside the epoch
            self.call_hooks("after_epoch", self.epoch)
            self.epoch, self.epoch_steps = self.epoch + 1, 0
            epochs_left -= 1
            if not steps:
                self._warn_no_batch(limit)
                break
        self._finish_training(first_step)

    def _train_epochs(self, train_steps: int | None) -> None:
        """RecIS's loop: ``args.train_epoch`` epochs (counting restored ones), each capped at
        ``train_steps`` steps."""
        self.restore()
        cap = train_steps if train_steps is not None else self.args.train_steps
        self._start_training(None if cap is None else cap * self.args.train_epoch)
        first_step = self.global_step
        while self.epoch < self.args.train_epoch:
            self.call_hooks("before_epoch", self.epoch)
            limit = None if cap is None else self.global_step + cap - self.epoch_steps
            steps, data_ended = self._train_epoch(limit)
            if data_ended and not steps:
                self._warn_no_batch(cap)
                break
            self.call_hooks("after_epoch", self.epoch)
            self.epoch, self.epoch_steps = self.epoch + 1, 0
            if not data_ended and hasattr(self.train_dataset, "reset"):
                self.train_dataset.reset()
        self._finish_training(first_step)

    def _start_training(self, total_steps: int | None) -> None:
        for hook in self.hooks:
            if total_steps is not None and hasattr(hook, "set_total_steps"):
                hook.set_total_steps(total_steps)
        self.call_hooks("before_train")
        self.prepare_training()

    def _finish_training(self, first_step: int) -> None:
        """Save unless the last step's checkpoint was just written; call the end hooks."""
        manager = self.checkpoint_manager
        trained = self.global_step > first_step
        if trained and manager.directory.latest() != manager.directory.path(self.global_step):
            manager.save()
        self.call_hooks("after_train")
        self.call_hooks("end")

    def _warn_no_batch(self, limit: int | None) -> None:
        goal = f"{limit} steps" if limit is not None else f"{self.args.train_epoch} epoch(s)"
        warnings.warn(
            f"the training data yielded no batch in epoch {self.epoch}: training stops at step "
            f"{self.global_step} ({self.global_step} of {goal}); are the files empty?",
            stacklevel=3,
        )

    def _train_epoch(self, limit: int | None) -> tuple[int, bool]:
        """Steps of one pass over the data; returns (steps, whether the data ran out)."""
        steps, remaining = 0, batches(self.train_dataset)
        while limit is None or self.global_step < limit:
            batch = next(remaining, _END)
            if not self._every_rank_has(batch):
                return steps, True
            self.call_hooks("before_step", self.global_step)
            metrics = self.run_step(batch)
            if not self.step_loss_is_global:
                metrics["loss"] = self._mean_over_ranks(metrics["loss"])
            metrics["epoch"] = self.epoch
            self.epoch_steps += 1
            self.checkpoint_manager.step()
            self.call_hooks("after_step", metrics, self.global_step)
            steps += 1
        return steps, False

    def evaluate(self, eval_steps: int | None = None) -> dict:
        """Run over ``eval_dataset`` (at most ``eval_steps`` batches) without training; return
        the mean loss, the number of batches and the last global metrics."""
        steps = eval_steps if eval_steps is not None else self.args.eval_steps
        self.call_hooks("before_evaluate")
        losses, metrics = [], {}
        with self._failures_reported(), self.evaluation():
            remaining, count = batches(self.eval_dataset), 0
            while steps is None or count < steps:
                batch = next(remaining, _END)
                if not self._every_rank_has(batch):
                    break
                clear_global_metrics()
                losses.append(self._mean_over_ranks(self.evaluate_batch(batch)))
                count += 1
                metrics = scalar_metrics(get_global_metrics())
        result = {"loss": sum(losses) / max(len(losses), 1), "steps": len(losses), **metrics}
        self.call_hooks("after_evaluate", result)
        return result

    def train_and_evaluate(self, epochs: int = 1, train_steps: int | None = None, eval_steps=None):
        """Alternate a training epoch (or ``train_steps`` more steps) and an evaluation."""
        results = []
        for _ in range(epochs):
            target = None if train_steps is None else self.global_step + train_steps
            if target is None:
                self.args.train_epoch = 1
            with self._failures_reported():
                self._train(target)
            results.append(self.evaluate(eval_steps))
        return results

    def all_ranks_finite(self, finite: bool) -> bool:
        """Whether ``finite`` holds on every rank (one all-reduce with several ranks)."""
        if self.communicator is None:
            return finite
        flag = np.array([int(finite)], np.int64)
        return bool(self.communicator.all_reduce(flag, "min", "all-reduce of finiteness")[0])

    def nonfinite_step(self) -> None:
        """Handle a step that was not applied because its loss or gradients are not finite:
        raise (``on_nonfinite="raise"``) or count it in :attr:`skipped_steps`."""
        step = self.global_step + 1
        if self.args.on_nonfinite == "raise":
            raise NonFiniteGradientError(
                f"step {step}: the loss or the dense or sparse gradients hold NaN or infinity; "
                f"the step was not applied (the weights are those of step {step - 1}); use "
                f"on_nonfinite='skip' to drop such steps"
            )
        self.skipped_steps += 1
        LOG.warning(f"step {step} skipped: its loss or gradients hold NaN or infinity")

    def _every_rank_has(self, batch) -> bool:
        """Whether this rank — and, with several ranks, every rank — has a batch."""
        has = batch is not _END
        if self.communicator is None:
            return has
        flag = np.array([int(has)], np.int64)
        return bool(self.communicator.all_reduce(flag, "min", "all-reduce of end of data")[0])

    def _mean_over_ranks(self, value: float) -> float:
        if self.communicator is None:
            return value
        total = self.communicator.all_reduce(np.array([float(value)]), "sum", "loss")
        return float(total[0]) / self.communicator.world_size

    def state_dict(self) -> dict:
        """The loop's own progress (the epoch, steps skipped), saved with each checkpoint."""
        return {
            "epoch": self.epoch,
            "epoch_steps": self.epoch_steps,
            "skipped_steps": self.skipped_steps,
        }

    def load_state_dict(self, state: dict) -> None:
        self.epoch = int(state["epoch"])
        self.epoch_steps = int(state.get("epoch_steps", 0))
        self.skipped_steps = int(state.get("skipped_steps", 0))

    def call_hooks(self, name: str, *args) -> None:
        for hook in self.hooks:
            getattr(hook, name)(*args)

"""Train the tiny model to ``--steps``, resuming from ``--output``; optionally die by SIGKILL.

Used by the kill-and-resume test as a separate process. At the end the final weights are saved
to ``<output>/final.pt``.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

import torch
from trainer_helpers import build, dataset, final_state

from recis.backends.torch.trainer import Trainer, TrainingArguments
from recis.hooks import Hook


class KillAt(Hook):
    """SIGKILL this process right after ``step`` (no cleanup, no final save)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def after_step(self, metrics=None, global_step: int = 0) -> None:
        if global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--kill_at_step", type=int, default=None)
    parser.add_argument("--kill_after_seconds", type=float, default=None)
    args = parser.parse_args()
    model, dense, sparse = build()
    trainer = Trainer(
        model,
        TrainingArguments(output_dir=args.output, save_steps=3, log_steps=1000, exact_steps=True),
        train_dataset=dataset(args.data),
        dense_optimizers=(dense, None),
        sparse_optimizer=sparse,
    )
    if args.kill_at_step is not None:
        trainer.add_hook(KillAt(args.kill_at_step))
    if args.kill_after_seconds is not None:
        timer = threading.Timer(args.kill_after_seconds, os.kill, (os.getpid(), signal.SIGKILL))
        timer.daemon = True
        timer.start()
    trainer.train(args.steps)
    torch.save(final_state(model), os.path.join(args.output, "final.pt"))


if __name__ == "__main__":
    sys.exit(main())

"""Train the JAX tiny model to ``--steps``, resuming from ``--output``; optionally die by SIGKILL
right after a step, or in the middle of writing a checkpoint.

Used by the JAX kill-and-resume test as a separate process. At the end the final weights are
saved to ``<output>/final.npz``.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

import numpy as np
from jax_trainer_helpers import build, final_state

from recis.hooks.hook import Hook


class KillAt(Hook):
    """SIGKILL this process right after ``step`` (no cleanup, no final save)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def after_step(self, metrics=None, global_step: int = 0) -> None:
        if global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


def kill_while_saving(manager, step: int) -> None:
    """SIGKILL the process once the files of checkpoint ``step`` are written, before it is
    published."""
    write = manager.write

    def write_then_die(tables, writer):
        write(tables, writer)
        if manager.global_step == step:
            os.kill(os.getpid(), signal.SIGKILL)

    manager.write = write_then_die


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--kill_at_step", type=int, default=None)
    parser.add_argument("--kill_while_saving", type=int, default=None)
    args = parser.parse_args()
    trainer = build(args.data, args.output, save_steps=3)
    if args.kill_at_step is not None:
        trainer.add_hook(KillAt(args.kill_at_step))
    if args.kill_while_saving is not None:
        kill_while_saving(trainer.checkpoint_manager, args.kill_while_saving)
    trainer.train(args.steps)
    np.savez(os.path.join(args.output, "final.npz"), **final_state(trainer))


if __name__ == "__main__":
    sys.exit(main())

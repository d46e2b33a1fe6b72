"""RecIS's ``SaverOptions`` (the one-argument form of the run-level ``Saver``) and
``ExtraFields`` (the names RecIS registers run state under).

>>> import torch
>>> options = SaverOptions(torch.nn.Linear(1, 1), None, "runs/a", None, 3)
>>> options.max_keep, options.concurrency, ExtraFields.global_step
(3, 4, 'global_step')
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


class ExtraFields:
    """RecIS's names of the run state a script registers on a ``Saver``."""

    global_step = "global_step"
    recis_dense_optim = "recis.dense.optim."
    train_io = "train_io"
    eval_io = "eval_io"
    train_window_io = "train_window_io"
    eval_window_io = "eval_window_io"
    io_state = "io_state"
    train_epoch = "train_epoch"
    prev_optim = "dense_optimizer"

    @classmethod
    def all_fields(cls) -> set[str]:
        """The names of registered objects (the IO names included)."""
        return {cls.global_step, cls.recis_dense_optim, cls.train_epoch} | cls.get_io_fields()

    @classmethod
    def get_io_fields(cls) -> set[str]:
        """The names of datasets' positions and of the epoch."""
        io = {cls.train_io, cls.eval_io, cls.train_window_io, cls.eval_window_io}
        return io | {cls.train_epoch}


@dataclass
class SaverOptions:
    """What a ``Saver`` saves and where, in RecIS's field order. ``params_not_save`` and
    ``save_filter_fn`` select RecIS's write blocks, which this package's format does not have:
    a ``Saver`` given either raises."""

    model: torch.nn.Module
    sparse_optim: object = None
    output_dir: str | None = None
    model_bank: list | None = None
    max_keep: int = 1
    concurrency: int = 4
    params_not_save: list[str] | None = None
    save_filter_fn: Callable | None = None

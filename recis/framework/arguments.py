"""``TrainingArguments`` and batch iteration, shared by the torch and JAX trainers (no torch).

>>> TrainingArguments(train_steps=10).save_steps
1000
>>> list(batches([(False, "b1"), (False, "b2"), (True, None)]))  # RecIS's (is_end, batch)
['b1', 'b2']
"""

from __future__ import annotations

from dataclasses import dataclass

MIXED_PRECISION = (None, "bf16", "fp16")
ON_NONFINITE = ("raise", "skip")


@dataclass
class TrainingArguments:
    """Options of a trainer (RecIS's fields, plus ``mixed_precision`` and ``seed``).

    ``train()`` runs ``train_epoch`` epochs, as RecIS's trainer does: each ends at the end of
    the data or after ``train_steps`` steps (None: no cap), and the next starts again from the
    beginning of the data. ``exact_steps=True`` makes ``train_steps`` instead the global step
    to train up to, over as many passes over the data as it takes (``train_epoch`` then
    applies only when ``train_steps`` is None). ``save_steps`` ≤ 0 saves only at the end;
    ``model_bank`` lists warm-start entries (see :mod:`recis.framework.model_bank`). A step
    whose loss or gradients hold NaN or infinity is never applied: ``on_nonfinite="raise"`` raises
    :class:`~recis.core.errors.NonFiniteGradientError`, ``"skip"`` drops the step and counts it
    (with fp16 loss scaling such a step is an overflow: skipped, and the scale lowered).
    ``allow_pickle`` lets :meth:`train` resume from checkpoints of older versions, whose ``.pt``
    files are unpickled (only for checkpoints from trusted places).
    """

    gradient_accumulation_steps: int = 1
    output_dir: str = "output_dir"
    model_bank: list | None = None
    log_steps: int = 100
    train_steps: int | None = None
    train_epoch: int = 1
    exact_steps: bool = False
    eval_steps: int | None = None
    save_steps: int = 1000
    max_to_keep: int = 5
    save_concurrency_per_rank: int = 4
    mixed_precision: str | None = None
    seed: int = 0
    on_nonfinite: str = "raise"
    allow_pickle: bool = False

    def __post_init__(self) -> None:
        if self.gradient_accumulation_steps < 1:
            raise ValueError("gradient_accumulation_steps must be >= 1")
        if self.mixed_precision not in MIXED_PRECISION:
            raise ValueError(f"mixed_precision must be one of {MIXED_PRECISION}")
        if self.on_nonfinite not in ON_NONFINITE:
            raise ValueError(f"on_nonfinite must be one of {ON_NONFINITE}: {self.on_nonfinite!r}")


def batches(dataset):
    """Batches of ``dataset``, unwrapping RecIS's ``(is_end, batch)`` pairs."""
    if dataset is None:
        raise ValueError("Trainer: no dataset to iterate")
    for item in dataset:
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], bool):
            if item[0]:
                return
            item = item[1]
        yield item

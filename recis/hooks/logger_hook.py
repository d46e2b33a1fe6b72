"""``LoggerHook``: training progress on rank 0 every ``log_step`` steps (RecIS API).

Each report shows the global step, samples per second (steps per second when no batch size is
known), the loss and the other scalar metrics, and — when the total number of steps is known —
the progress and the estimated time left. On a terminal (standard error is a TTY) it is a live
progress bar redrawn in place; otherwise it is a plain log line (``Logger`` INFO records).

Batch size: a step's ``metrics["batch_size"]`` (the trainer passes it) wins over the hook's
``batch_size`` argument. The keys ``batch_size`` and ``step_seconds`` feed the rate and are not
shown as metrics. Evaluation results (``after_evaluate``) are logged as one line.

>>> hook = LoggerHook(log_step=2, batch_size=512, total_steps=4, progress=False)
>>> for step in range(1, 5):  # doctest: +ELLIPSIS
...     hook.after_step({"loss": 0.5 / step, "auc": 0.7}, global_step=step)
[...] [INFO] [...] step 2/4 (50%) | ... samples/s | loss 0.25  auc 0.7 | ETA ...
[...] [INFO] [...] step 4/4 (100%) | ... samples/s | loss 0.125  auc 0.7 | ETA 0:00:00
"""

from __future__ import annotations

import shutil
import sys
import time
from datetime import timedelta

from recis.framework.metrics import scalar_metrics
from recis.hooks.hook import Hook
from recis.utils.logger import Logger, is_rank_zero

HIDDEN_METRICS = frozenset({"batch_size", "step_seconds"})
BAR_WIDTH = 20


class Throughput:
    """Steps and samples per second, over the interval since the last :meth:`interval` call and
    over the whole run; the clock starts at :meth:`start` or, failing that, at the first step
    (which then only starts the clock).

    >>> seconds = iter([0.0, 2.0])
    >>> rate = Throughput(batch_size=100, clock=lambda: next(seconds))
    >>> rate.step({}); rate.step({"batch_size": 60}); rate.step({})
    >>> rate.interval()
    (1.0, 80.0)
    """

    def __init__(self, batch_size: int | None = None, clock=time.perf_counter) -> None:
        self.batch_size = batch_size
        self._clock = clock
        self._started: float | None = None
        self._mark = (0.0, 0, 0)  # time, steps, samples at the last interval
        self.steps = 0
        self.samples = 0
        self.sized = True  # every step so far had a batch size

    def start(self) -> None:
        self._started = self._clock()
        self._mark = (self._started, self.steps, self.samples)

    def step(self, metrics: dict | None) -> None:
        """Count one step (of ``metrics["batch_size"]`` or ``batch_size`` samples)."""
        if self._started is None:
            self.start()
            return
        size = (metrics or {}).get("batch_size") or self.batch_size
        self.steps += 1
        self.samples += size or 0
        self.sized = self.sized and bool(size)

    def interval(self) -> tuple[float, float | None]:
        """(steps/s, samples/s or None without batch sizes) since the previous call."""
        now = self._clock()
        then, steps, samples = self._mark
        self._mark = (now, self.steps, self.samples)
        elapsed = max(now - then, 1e-9)
        samples_rate = (self.samples - samples) / elapsed if self.sized else None
        return (self.steps - steps) / elapsed, samples_rate

    def steps_per_second(self) -> float:
        """Mean step rate since the clock started (0 before any counted step)."""
        if self._started is None or not self.steps:
            return 0.0
        return self.steps / max(self._clock() - self._started, 1e-9)


class LoggerHook(Hook):
    """Report progress every ``log_step`` steps on rank 0 (see the module docstring).

    Args:
        log_step: steps between reports.
        batch_size: samples per step, when the metrics do not say.
        total_steps: the run's total steps, for the progress and ETA (see :meth:`set_total_steps`).
        progress: draw a progress bar (default: when ``stream`` is a terminal).
        stream: where the progress bar is drawn (default standard error).
    """

    def __init__(
        self,
        log_step: int = 10,
        batch_size: int | None = None,
        total_steps: int | None = None,
        progress: bool | None = None,
        stream=None,
    ) -> None:
        if log_step < 1:
            raise ValueError(f"log_step must be >= 1, got {log_step}")
        self.log_step = log_step
        self.total_steps = total_steps
        self.throughput = Throughput(batch_size)
        self._stream = stream
        self._progress = progress
        self._bar_length = 0  # characters of the bar on screen, 0 when none
        self.logger = Logger("recis.hooks.LoggerHook")

    def set_total_steps(self, total_steps: int | None) -> None:
        """The global step at which training ends (enables the progress and ETA)."""
        self.total_steps = total_steps

    def before_train(self) -> None:
        self.throughput.start()

    def after_step(self, metrics: dict | None = None, global_step: int = 0) -> None:
        self.throughput.step(metrics)
        if global_step % self.log_step or not is_rank_zero():
            return
        rate, shown, eta = self._rate(), self._shown(metrics), self._eta(global_step)
        if self._bar_enabled():  # the ETA first: a narrow terminal cuts the end of the line
            bar = [f"{self._bar(global_step)} {eta}".rstrip(), rate, shown]
            self._draw(" | ".join(part for part in bar if part))
        else:
            line = [self._position(global_step), rate, shown, eta]
            self.logger.info(" | ".join(part for part in line if part))

    def after_evaluate(self, metrics: dict | None = None) -> None:
        if is_rank_zero():
            self._finish_bar()
            self.logger.info("evaluation | " + format_metrics(scalar_metrics(metrics)))

    def after_train(self) -> None:
        self._finish_bar()

    def end(self) -> None:
        self._finish_bar()

    def _rate(self) -> str:
        steps_rate, samples_rate = self.throughput.interval()
        if samples_rate is None:
            return f"{steps_rate:.2f} steps/s"
        return f"{samples_rate:,.0f} samples/s"

    @staticmethod
    def _shown(metrics: dict | None) -> str:
        scalars = scalar_metrics(metrics)
        return format_metrics({k: v for k, v in scalars.items() if k not in HIDDEN_METRICS})

    def _position(self, global_step: int) -> str:
        if not self.total_steps:
            return f"step {global_step}"
        percent = 100 * min(global_step / self.total_steps, 1.0)
        return f"step {global_step}/{self.total_steps} ({percent:.0f}%)"

    def _eta(self, global_step: int) -> str:
        """``ETA h:mm:ss`` at the mean step rate so far ('' without a total or a rate)."""
        rate = self.throughput.steps_per_second()
        if not self.total_steps or rate <= 0:
            return ""
        remaining = max(self.total_steps - global_step, 0) / rate
        return f"ETA {timedelta(seconds=round(remaining))}"

    def _bar(self, global_step: int) -> str:
        """``step i/n [###---] p%``, or just the step when the total is unknown."""
        if not self.total_steps:
            return f"step {global_step}"
        fraction = min(global_step / self.total_steps, 1.0)
        done = round(BAR_WIDTH * fraction)
        filled = "#" * done + "-" * (BAR_WIDTH - done)
        return f"step {global_step}/{self.total_steps} [{filled}] {100 * fraction:.0f}%"

    def _bar_enabled(self) -> bool:
        if self._progress is None:
            self._progress = self._output().isatty()
        return self._progress

    def _output(self):
        return self._stream if self._stream is not None else sys.stderr

    def _draw(self, line: str) -> None:
        line = line[: shutil.get_terminal_size().columns - 1]
        self._output().write("\r" + line.ljust(self._bar_length))
        self._output().flush()
        self._bar_length = len(line)

    def _finish_bar(self) -> None:
        if self._bar_length:
            self._output().write("\n")
            self._output().flush()
            self._bar_length = 0


def format_metrics(scalars: dict[str, float]) -> str:
    """``name value`` pairs with 5 significant digits, e.g. ``loss 0.43213  auc 0.77``."""
    return "  ".join(f"{name} {value:.5g}" for name, value in scalars.items())

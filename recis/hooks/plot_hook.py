"""``PlotHook``: a PNG of the loss and AUC curves, written when training ends (rank 0).

The hook records, every ``every`` steps, the loss and each metric whose name contains ``auc``
(``auc``, ``gauc``, ...); ``after_train`` and ``end`` draw them with
:func:`plot_training_curves`: the loss on the left (raw, and a moving average when there are
many points), the AUC metrics on the right. Needs ``matplotlib``; it draws off screen and leaves
matplotlib's global backend alone.

>>> import tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "curves.png")
>>> hook = PlotHook(path)
>>> for step in range(1, 4):
...     hook.after_step({"loss": 1.0 / step, "auc": 0.5 + step / 10}, global_step=step)
>>> hook.curves["auc"]
([1, 2, 3], [0.6, 0.7, 0.8])
>>> hook.end()
>>> open(path, "rb").read(4)
b'\\x89PNG'
"""

from __future__ import annotations

import numpy as np

from recis.framework.metrics import scalar_metrics
from recis.hooks.hook import Hook
from recis.utils.logger import is_rank_zero

SMOOTHING_POINTS = 50  # a moving average is drawn over the loss beyond this many points


class PlotHook(Hook):
    """Record loss and AUC metrics; plot them to ``path`` at the end (see the module docstring).

    Args:
        path: the PNG file to write.
        every: steps between recorded points.
    """

    def __init__(self, path: str, every: int = 1) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.path = path
        self.every = every
        self.curves: dict[str, tuple[list[int], list[float]]] = {}

    def after_step(self, metrics: dict | None = None, global_step: int = 0) -> None:
        if global_step % self.every:
            return
        for name, value in scalar_metrics(metrics).items():
            if name == "loss" or "auc" in name.lower():
                steps, values = self.curves.setdefault(name, ([], []))
                steps.append(global_step)
                values.append(value)

    def after_train(self) -> None:
        if is_rank_zero() and self.curves:
            plot_training_curves(self.path, self.curves)

    def end(self) -> None:
        self.after_train()


def plot_training_curves(path: str, curves: dict[str, tuple[list, list]]) -> None:
    """Write a PNG: ``curves["loss"]`` on the left, every other (AUC) curve on the right.

    ``curves`` maps a name to (steps, values).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # optional dependency
    from matplotlib.figure import Figure

    others = {name: curve for name, curve in curves.items() if name != "loss"}
    panels = int("loss" in curves) + int(bool(others))
    figure = Figure(figsize=(6.4 * panels, 4.2), layout="constrained")
    FigureCanvasAgg(figure)
    axes = iter(figure.subplots(1, panels, squeeze=False)[0])
    if "loss" in curves:
        _draw_loss(next(axes), *curves["loss"])
    if others:
        _draw_aucs(next(axes), others)
    figure.savefig(path, dpi=110)


def _draw_loss(ax, steps: list, values: list) -> None:
    values = np.asarray(values, np.float64)
    if values.size > SMOOTHING_POINTS:
        ax.plot(steps, values, color="tab:blue", alpha=0.3, linewidth=0.8, label="loss")
        window = values.size // SMOOTHING_POINTS + 1
        smooth = np.convolve(values, np.ones(window) / window, mode="valid")
        ax.plot(steps[window - 1 :], smooth, color="tab:blue", label=f"mean of {window}")
        ax.legend()
    else:
        ax.plot(steps, values, color="tab:blue", marker="." if values.size < 30 else None)
    _style(ax, f"loss (last {values[-1]:.4g})", "loss")


def _draw_aucs(ax, curves: dict[str, tuple[list, list]]) -> None:
    for name, (steps, values) in curves.items():
        marker = "." if len(values) < 30 else None
        ax.plot(steps, values, marker=marker, label=f"{name} (last {values[-1]:.4f})")
    _style(ax, "AUC", "AUC")
    ax.legend()


def _style(ax, title: str, ylabel: str) -> None:
    ax.set(title=title, xlabel="step", ylabel=ylabel)
    ax.xaxis.get_major_locator().set_params(integer=True)  # steps are whole numbers
    ax.grid(alpha=0.3)

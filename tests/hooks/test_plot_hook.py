"""PlotHook: loss and AUC curves recorded per step and drawn to a readable PNG."""

from __future__ import annotations

import numpy as np
from matplotlib.image import imread

from recis.hooks import PlotHook, plot_hook


def noisy_training(hook, steps, seed=0):
    rng = np.random.default_rng(seed)
    for step in range(1, steps + 1):
        loss = 0.7 * np.exp(-step / 80) + 0.3 + 0.05 * rng.standard_normal()
        auc = 0.8 - 0.3 * np.exp(-step / 60) + 0.01 * rng.standard_normal()
        hook.after_step({"loss": loss, "auc": auc, "gauc": auc - 0.05, "epoch": 0}, step)


def test_records_loss_and_auc_metrics_every_few_steps():
    hook = PlotHook("unused.png", every=3)
    noisy_training(hook, 10)
    assert sorted(hook.curves) == ["auc", "gauc", "loss"]  # epoch is not a curve
    assert hook.curves["loss"][0] == [3, 6, 9]


def test_png_with_loss_and_auc_panels(tmp_path):
    path = tmp_path / "curves.png"
    hook = PlotHook(str(path))
    noisy_training(hook, 300)
    hook.after_train()
    image = imread(path)
    height, width = image.shape[:2]
    assert width > 1.8 * height > 800  # two panels side by side
    assert image[..., :3].std() > 0.05  # not a blank canvas


def test_loss_alone_gives_one_panel(tmp_path, monkeypatch):
    path = tmp_path / "loss.png"
    plot_hook.plot_training_curves(str(path), {"loss": ([1, 2, 3], [0.9, 0.7, 0.6])})
    height, width = imread(path).shape[:2]
    assert width < 1.8 * height
    monkeypatch.setattr(plot_hook, "is_rank_zero", lambda: False)
    other = PlotHook(str(tmp_path / "other.png"))
    noisy_training(other, 5)
    other.end()
    assert not (tmp_path / "other.png").exists()

"""Train DeepFM on Criteo-shaped ORC data: ``python -m examples.deepfm.train --steps 200``.

See :mod:`examples.launcher` for the flags.
"""

from __future__ import annotations

from absl import app, flags

from examples import launcher
from examples.deepfm.model import DeepFM

flags.DEFINE_string("hidden", "400,400,400", "Widths of the MLP layers.")


def main(_) -> None:
    hidden = tuple(int(width) for width in flags.FLAGS.hidden.split(",") if width)
    launcher.run(lambda: DeepFM(dim=flags.FLAGS.dim, hidden=hidden))


if __name__ == "__main__":
    app.run(main)

"""Train DLRM on Criteo-shaped ORC data: ``python -m examples.dlrm.train --steps 200``.

See :mod:`examples.launcher` for the flags.
"""

from __future__ import annotations

from absl import app, flags

from examples import launcher
from examples.dlrm.model import DLRM


def main(_) -> None:
    launcher.run(lambda: DLRM(dim=flags.FLAGS.dim))


if __name__ == "__main__":
    app.run(main)

"""Train DLRM on Criteo-shaped ORC data: ``python -m examples.dlrm.train --steps 200``
(``--backend=jax`` for the Flax model).

See :mod:`examples.launcher` for the flags.
"""

from __future__ import annotations

from absl import app, flags

from examples import launcher


def torch_model():
    from examples.dlrm.model import DLRM

    return DLRM(dim=flags.FLAGS.dim, device=flags.FLAGS.device)


def jax_model():
    from examples.dlrm.model_jax import DLRM

    return DLRM(dim=flags.FLAGS.dim, seed=flags.FLAGS.seed)


def main(_) -> None:
    launcher.run({"torch": torch_model, "jax": jax_model})


if __name__ == "__main__":
    app.run(main)

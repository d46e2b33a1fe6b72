"""Train DeepFM on Criteo-shaped ORC data: ``python -m examples.deepfm.train --steps 200``
(``--backend=jax`` for the Flax model, ``--devices=4`` to train it on four local devices).

See :mod:`examples.launcher` for the flags.
"""

from __future__ import annotations

from absl import app, flags

from examples import launcher

flags.DEFINE_string("hidden", "400,400,400", "Widths of the MLP layers.")


def hidden() -> tuple[int, ...]:
    return tuple(int(width) for width in flags.FLAGS.hidden.split(",") if width)


def torch_model():
    from examples.deepfm.model import DeepFM

    return DeepFM(dim=flags.FLAGS.dim, hidden=hidden(), device=flags.FLAGS.device)


def jax_model():
    from examples.deepfm.model_jax import DeepFM

    mesh = launcher.data_parallel()
    return DeepFM(dim=flags.FLAGS.dim, hidden=hidden(), seed=flags.FLAGS.seed, mesh=mesh)


def main(_) -> None:
    launcher.run({"torch": torch_model, "jax": jax_model})


if __name__ == "__main__":
    app.run(main)

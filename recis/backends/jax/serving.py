"""The JAX runner of :class:`recis.serving.Predictor`: loads a ``jax.export`` program.

``load_program(file, entry)`` returns ``program(dense, activations) → scores``, NumPy out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import jax
import numpy as np


def load_program(file: Path, entry: Mapping) -> Callable[[Mapping, Mapping], np.ndarray]:
    exported = jax.export.deserialize(bytearray(file.read_bytes()))

    def run(dense: Mapping, activations: Mapping) -> np.ndarray:
        dense = {k: np.asarray(v) for k, v in dense.items()}
        return np.asarray(exported.call(dense, dict(activations)))

    return run

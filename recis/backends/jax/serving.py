"""The JAX runner of :class:`recis.serving.Predictor`: loads a ``jax.export`` program.

``load_program(file, entry)`` returns ``program(dense, activations) → scores``, NumPy out; GPU
activations (CuPy) enter over DLPack, without a copy.
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
        activations = {
            k: v if isinstance(v, np.ndarray) else jax.dlpack.from_dlpack(v)
            for k, v in activations.items()
        }
        return np.asarray(exported.call(dense, activations))

    return run

"""The torch runner of :class:`recis.serving.Predictor`: loads a ``torch.export`` program.

``load_program(file, entry)`` returns ``program(dense, activations) → scores``: NumPy in, the
program runs under ``torch.no_grad``, NumPy out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import torch


def load_program(file: Path, entry: Mapping) -> Callable[[Mapping, Mapping], np.ndarray]:
    module = torch.export.load(str(file)).module()

    def run(dense: Mapping, activations: Mapping) -> np.ndarray:
        with torch.no_grad():
            dense = {k: torch.from_numpy(np.asarray(v)) for k, v in dense.items()}
            activations = {k: torch.from_dlpack(v) for k, v in activations.items()}
            return module(dense, activations).numpy()

    return run

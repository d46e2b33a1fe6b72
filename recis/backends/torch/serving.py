"""The torch runner of :class:`recis.serving.Predictor`: loads a ``torch.export`` program.

``load_program(file, entry)`` returns ``program(dense, activations) → scores``: the activations
(engine arrays) enter over DLPack, the dense columns follow them to their device, the program
(moved there on first use) runs under ``torch.no_grad``, and the scores come back as NumPy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import torch


def load_program(file: Path, entry: Mapping) -> Callable[[Mapping, Mapping], np.ndarray]:
    module = torch.export.load(str(file)).module()
    where = [torch.device("cpu")]  # the module's device

    def run(dense: Mapping, activations: Mapping) -> np.ndarray:
        with torch.no_grad():
            activations = {k: torch.from_dlpack(v) for k, v in activations.items()}
            device = next(iter(activations.values())).device if activations else None
            device = device or torch.device("cpu")
            dense = {k: torch.as_tensor(np.asarray(v), device=device) for k, v in dense.items()}
            if device != where[0]:
                module.to(device)
                where[0] = device
            return module(dense, activations).cpu().numpy()

    return run

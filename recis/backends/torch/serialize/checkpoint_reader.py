"""``CheckpointReader``: lists and reads the tensors of a checkpoint (RecIS API).

Sparse tensors are named ``<table>/<field>`` (see :mod:`recis.checkpoint`); dense tensors
and, when the checkpoint has a ``model.pt``, the dense model's state-dict entries keep their names.

>>> import tempfile, torch
>>> from recis.serialize import Saver
>>> path = Saver(f"{tempfile.mkdtemp()}/ckpt", tensors={"w": torch.ones(2, 3)}).save()
>>> reader = CheckpointReader(path)
>>> reader.tensor_names(), reader.tensor_shape("w"), reader.tensor_dtype("w")
(['w'], [2, 3], torch.float32)
>>> reader.read_tensor("w").sum().item()
6.0
"""

from __future__ import annotations

import torch

from recis.backends.torch.serialize.tensors import to_torch, torch_dtype
from recis.checkpoint import Checkpoint

MODEL_FILE = "model.pt"


class CheckpointReader:
    """Reads the checkpoint at ``path`` (a checkpoint directory, or a run directory: its newest
    checkpoint). Every file is checked against its sha256 before it is read."""

    def __init__(self, path) -> None:
        self.checkpoint = Checkpoint(path)
        self._model: dict[str, torch.Tensor] | None = None

    def tensor_names(self) -> list[str]:
        extra = [
            name for name in self._model_state() if name not in self.checkpoint.index["tensors"]
        ]
        return sorted([*self.checkpoint.tensor_names(), *extra])

    def read_tensor(self, name: str) -> torch.Tensor:
        if name in self.checkpoint.index["tensors"]:
            return to_torch(self.checkpoint.read_tensor(name))
        return self._model_tensor(name).clone()

    def tensor_shape(self, name: str) -> list[int]:
        if name in self.checkpoint.index["tensors"]:
            return list(self.checkpoint.tensor_info(name)["shape"])
        return list(self._model_tensor(name).shape)

    def tensor_dtype(self, name: str) -> torch.dtype:
        if name in self.checkpoint.index["tensors"]:
            return torch_dtype(self.checkpoint.tensor_info(name)["dtype"])
        return self._model_tensor(name).dtype

    def _model_tensor(self, name: str) -> torch.Tensor:
        state = self._model_state()
        if name not in state:
            raise KeyError(f"checkpoint {str(self.checkpoint.path)!r} has no tensor {name!r}")
        return state[name]

    def _model_state(self) -> dict[str, torch.Tensor]:
        if self._model is None:
            self._model = {}
            if MODEL_FILE in self.checkpoint.index["files"]:
                path = self.checkpoint.file(MODEL_FILE)
                state = torch.load(path, map_location="cpu", weights_only=True)
                self._model = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
        return self._model

"""``CheckpointReader``: lists and reads the tensors of a checkpoint (RecIS API).

Sparse tensors are named ``<table>/<field>`` (see :mod:`recis.checkpoint`) and read under
RecIS's names too (``<table>@id``, ``<table>@embedding``, ``<table>@sparse_adamw_tf_exp_avg``);
dense tensors and the dense model's state-dict entries (of a trainer's checkpoint) keep their
names. The sparse optimizer's update count reads as RecIS names it (e.g.
``sparse_adagrad_step``, int64 ``[1]``: the most updates of any table), and so do the entries
RecIS's run-level ``Saver`` records (``sparse_adamw_tf_beta1``...). Nothing is
unpickled: the ``model.pt`` of checkpoints of older versions is read only with
``allow_pickle=True``.

>>> import tempfile, torch
>>> from recis.serialize import Saver
>>> path = Saver(path=f"{tempfile.mkdtemp()}/ckpt", tensors={"w": torch.ones(2, 3)}).save()
>>> reader = CheckpointReader(path)
>>> reader.tensor_names(), reader.tensor_shape("w"), reader.tensor_dtype("w")
(['w'], [2, 3], torch.float32)
>>> reader.read_tensor("w").sum().item()
6.0
"""

from __future__ import annotations

import torch

from recis.backends.torch.recis_files import RECIS_OPTIMIZER_ENTRIES
from recis.backends.torch.serialize.recis_layout import RecisCheckpoint, is_recis_checkpoint
from recis.backends.torch.serialize.tensors import TENSORS, to_torch, torch_dtype
from recis.backends.torch.slot_group import RECIS_STATE_NAMES
from recis.checkpoint import Checkpoint
from recis.checkpoint.state_tree import read_state, state_file_names

RECIS_STEP_ENTRIES = {
    "Adagrad": "sparse_adagrad_step",
    "RowWiseAdagrad": "sparse_row_wise_adagrad_step",
    "AdamW": "sparse_adamw_step",
    "AdamWTF": "sparse_adamw_tf_step",
}
"""RecIS's name of a sparse optimizer's update count, by engine rule."""

MODEL = "model"  # the dense model's state (JSON and safetensors)
MODEL_FILE = "model.pt"  # the same, pickled, in checkpoints of older versions


class CheckpointReader:
    """Reads the checkpoint at ``path`` (a checkpoint directory, or a run directory: its newest
    checkpoint). Every file is checked against its sha256 before it is read; ``allow_pickle``
    also reads the pickled ``model.pt`` of older versions (only for trusted checkpoints). A
    directory written by RecIS itself gives a :class:`RecisCheckpointReader`."""

    def __new__(cls, path, allow_pickle: bool = False):
        if cls is CheckpointReader and is_recis_checkpoint(path):
            return super().__new__(RecisCheckpointReader)
        return super().__new__(cls)

    def __init__(self, path, allow_pickle: bool = False) -> None:
        self.checkpoint = Checkpoint(path)
        self.allow_pickle = allow_pickle
        self._model: dict[str, torch.Tensor] | None = None

    def tensor_names(self) -> list[str]:
        extra = [
            name for name in self._model_state() if name not in self.checkpoint.index["tensors"]
        ]
        return sorted([*self.checkpoint.tensor_names(), *extra, *self._optimizer_steps()])

    def read_tensor(self, name: str) -> torch.Tensor:
        name = self._table_tensor(name) or name
        if name in self.checkpoint.index["tensors"]:
            return to_torch(self.checkpoint.read_tensor(name))
        steps = self._optimizer_steps()
        if name in steps:
            return steps[name]
        return self._model_tensor(name).clone()

    def _optimizer_steps(self) -> dict[str, torch.Tensor]:
        """RecIS's entries of the saved sparse optimizer: its step (the most updates of any
        table), and what RecIS's run-level ``Saver`` recorded (``_beta1``...); none without
        one."""
        entries = self.checkpoint.metadata.get(RECIS_OPTIMIZER_ENTRIES) or {}
        recorded = {
            name: torch.tensor(entry["value"], dtype=torch_dtype(entry["dtype"]))
            for name, entry in entries.items()
        }
        state = self.checkpoint.metadata.get("sparse_optimizer") or {}
        name = RECIS_STEP_ENTRIES.get(state.get("rule"))
        if name is None:
            return recorded
        steps = state.get("tables", {}).get("steps", {})
        return {name: torch.tensor([max(steps.values(), default=0)], dtype=torch.int64)} | recorded

    def _table_tensor(self, name: str) -> str | None:
        """Our name of RecIS's ``<table>@<field>`` (``id``, ``embedding``, or the optimizer's
        state such as ``sparse_adamw_tf_exp_avg``); None when it names no table tensor."""
        table, at, field = name.partition("@")
        if not at:
            return None
        step = RECIS_STEP_ENTRIES.get(
            (self.checkpoint.metadata.get("sparse_optimizer") or {}).get("rule")
        )
        prefix = step.removesuffix("step") if step else None
        if prefix and field.startswith(prefix):
            field = RECIS_STATE_NAMES.get(field.removeprefix(prefix), field)
        ours = f"{table}/{field}"
        return ours if ours in self.checkpoint.index["tensors"] else None

    def tensor_shape(self, name: str) -> list[int]:
        if name in self.checkpoint.index["tensors"]:
            return list(self.checkpoint.tensor_info(name)["shape"])
        return list(self.read_tensor(name).shape)

    def tensor_dtype(self, name: str) -> torch.dtype:
        if name in self.checkpoint.index["tensors"]:
            return torch_dtype(self.checkpoint.tensor_info(name)["dtype"])
        return self.read_tensor(name).dtype

    def _model_tensor(self, name: str) -> torch.Tensor:
        state = self._model_state()
        if name not in state:
            raise KeyError(f"checkpoint {str(self.checkpoint.path)!r} has no tensor {name!r}")
        return state[name]

    def _model_state(self) -> dict[str, torch.Tensor]:
        if self._model is None:
            state, files = {}, self.checkpoint.index["files"]
            if state_file_names(MODEL)[0] in files:
                state = read_state(self.checkpoint, MODEL, TENSORS)
            elif MODEL_FILE in files and self.allow_pickle:
                path = self.checkpoint.file(MODEL_FILE)
                state = torch.load(path, map_location="cpu", weights_only=True)
            self._model = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
        return self._model


class RecisCheckpointReader(CheckpointReader):
    """:class:`CheckpointReader` of a checkpoint directory written by RecIS itself
    (:mod:`~recis.backends.torch.serialize.recis_layout`): ``CheckpointReader(path)`` of such a
    directory is one. Its tensors are named as RecIS names them (``<table>@id``...)."""

    def __init__(self, path, allow_pickle: bool = False) -> None:
        self.recis = RecisCheckpoint(path)

    def tensor_names(self) -> list[str]:
        return self.recis.tensor_names()

    def read_tensor(self, name: str) -> torch.Tensor:
        return to_torch(self.recis.read(name))

    def tensor_shape(self, name: str) -> list[int]:
        return self.recis.shape(name)

    def tensor_dtype(self, name: str) -> torch.dtype:
        return torch_dtype(self.recis.dtype(name).name)

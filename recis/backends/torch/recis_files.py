"""RecIS's pickled files of a checkpoint, written beside ours by RecIS's run-level ``Saver``.

RecIS's scripts and tools read a checkpoint's dense model, run state and data positions with
``torch.load``: ``model.pt`` (the model's state dict, hash tables excluded), ``extra.pt``
(the registered objects: state dicts, or values such as the global step tensor),
``io_state_<rank>.pt`` (the registered datasets' positions) and ``io_state_count`` (the number
of ranks). :class:`RecisFiles` adds them to a checkpoint being written; this package loads a
checkpoint from its own files and never unpickles these.

>>> import tempfile, torch
>>> from recis.framework.checkpoint_manager import Saver
>>> model = torch.nn.Linear(1, 1)
>>> saver = Saver(model, output_dir=tempfile.mkdtemp())
>>> step = torch.tensor(3)
>>> saver.register_for_checkpointing("global_step", step)
>>> path = saver.save("ckpt_3")
>>> sorted(torch.load(path / "model.pt")), torch.load(path / "extra.pt")
(['bias', 'weight'], {'global_step': tensor(3)})
"""

from __future__ import annotations

import torch

from recis.checkpoint import CheckpointWriter

MODEL_PT, EXTRA_PT, IO_STATE_COUNT = "model.pt", "extra.pt", "io_state_count"
RECIS_OPTIMIZER_ENTRIES = "recis_optimizer_entries"  # index metadata key


def io_state_file(rank: int) -> str:
    """RecIS's name of rank ``rank``'s data positions, e.g. ``io_state_0.pt``."""
    return f"io_state_{rank}.pt"


class RecisFiles:
    """Mixed into a torch ``CheckpointManager``: each checkpoint also holds RecIS's files."""

    def write(self, tables, writer: CheckpointWriter) -> None:
        super().write(tables, writer)
        writer.write_file(MODEL_PT, _saved(self._dense_state()))
        writer.write_file(EXTRA_PT, _saved(self.recis_extra()))
        io_states = self.io_states()
        if io_states:
            if writer.world_size == 1:
                writer.write_file(io_state_file(0), _saved(io_states))
            else:
                writer.write_rank_file(io_state_file(0), _saved(io_states))
            count = str(writer.world_size).encode()
            writer.write_file(IO_STATE_COUNT, lambda out: out.write(count))

    def metadata(self) -> dict:
        """Ours, with the sparse optimizer's RecIS entries (``sparse_adamw_tf_step``,
        ``_beta1``...) that :class:`~recis.serialize.CheckpointReader` gives by name."""
        return super().metadata() | {RECIS_OPTIMIZER_ENTRIES: self.recis_optimizer_entries()}

    def recis_optimizer_entries(self) -> dict[str, dict]:
        """The sparse optimizer's one-tensor entries: {name: {"dtype", "value"}}."""
        if self.sparse_optimizer is None:
            return {}
        state = self.sparse_optimizer.state_dict()
        return {
            name: {"dtype": str(value.dtype).removeprefix("torch."), "value": value.tolist()}
            for name, value in state.items()
            if isinstance(value, torch.Tensor)
        }

    def recis_extra(self) -> dict:
        """The registered objects as RecIS saves them: a state dict, or the value itself."""
        return {name: _recis_state(obj) for name, obj in self.objects.items()}


def _recis_state(obj):
    held = getattr(obj, "recis_value", None)
    return held() if held is not None else obj.state_dict()


def _saved(value):
    return lambda out: torch.save(value, out)

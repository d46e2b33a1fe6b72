"""RecIS's pickled files of a checkpoint, written beside ours by RecIS's run-level ``Saver``.

RecIS's scripts and tools read a checkpoint's dense model, run state and data positions with
``torch.load``: ``model.pt`` (the model's state dict, hash tables excluded), ``extra.pt``
(the registered objects: state dicts, or values such as the global step tensor),
``io_state_0.pt`` (the registered datasets' positions) and ``io_state_count`` (the number of
ranks), the last two in checkpoints of one process (with several ranks each rank's positions
are in our rank files only). :class:`RecisFiles` adds them to a checkpoint being written; this
package loads a checkpoint from its own files and never unpickles these.

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

from fnmatch import fnmatchcase
from typing import TYPE_CHECKING

import torch

from recis.checkpoint import (
    EMBEDDING,
    OPTIMIZER,
    CheckpointWriter,
    Source,
    field_kind,
    load_tables,
    plan_load,
)

if TYPE_CHECKING:
    from recis.backends.torch.recis_bank import Renames

MODEL = "model"  # our state tree of the dense model

MODEL_PT, EXTRA_PT, IO_STATE_COUNT = "model.pt", "extra.pt", "io_state_count"
RECIS_OPTIMIZER_ENTRIES = "recis_optimizer_entries"  # index metadata key


def io_state_file(rank: int) -> str:
    """RecIS's name of rank ``rank``'s data positions, e.g. ``io_state_0.pt``."""
    return f"io_state_{rank}.pt"


class RecisFiles:
    """Mixed into a torch ``CheckpointManager``: each checkpoint also holds RecIS's files, and
    loads follow :attr:`renames` (RecIS's ``oname``: tables and dense entries loaded from others
    of the checkpoint)."""

    renames: Renames | None = None

    def write(self, tables, writer: CheckpointWriter) -> None:
        super().write(tables, writer)
        writer.write_file(MODEL_PT, _saved(self._dense_state()))
        writer.write_file(EXTRA_PT, _saved(self.recis_extra()))
        io_states = self.io_states()
        if io_states and writer.world_size == 1:  # with several ranks: our rank files only
            writer.write_file(io_state_file(0), _saved(io_states))
            writer.write_file(IO_STATE_COUNT, lambda out: out.write(b"1"))

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

    def _load_sparse(self, checkpoint, parts, exclude, strict, cast) -> dict[str, list[str]]:
        renames = self.renames.tables if self.renames is not None else {}
        if not renames:
            return super()._load_sparse(checkpoint, parts, exclude, strict, cast)
        kinds = [EMBEDDING, "policy"] if "sparse" in parts else []
        kinds += [OPTIMIZER] if "sparse_opt" in parts else []
        tables = self.engine_tables()
        if not kinds or not tables:
            return {}
        moved = [*renames, *renames.values()]
        plan = plan_load(checkpoint, tables, kinds, [*exclude, *moved], strict, cast)
        for table in tables.values():
            for child in table.children:
                if child in renames and not any(fnmatchcase(child, p) for p in exclude):
                    source = renames[child]
                    saved = checkpoint.tables[checkpoint.logical[source]["table"]]["fields"]
                    fields = [f for f in table.store.fields if field_kind(table, f) in kinds]
                    plan[child] = Source(source, tuple(f for f in fields if f in saved))
        return load_tables(checkpoint, tables, plan, strict, self.communicator())

    def _load_dense(self, states, exclude, strict: bool) -> None:
        renames = self.renames.dense if self.renames is not None else {}
        super()._load_dense(_RenamedStates(states, renames) if renames else states, exclude, strict)

    def recis_extra(self) -> dict:
        """The registered objects as RecIS saves them: a state dict, or the value itself."""
        return {name: _recis_state(obj) for name, obj in self.objects.items()}


class _RenamedStates:
    """A checkpoint's states with the dense model's entries taken from other names."""

    def __init__(self, states, renames: dict[str, str]) -> None:
        self.states, self.renames, self.checkpoint = states, renames, states.checkpoint

    def has(self, name: str) -> bool:
        return self.states.has(name)

    def read(self, name: str, rank: int | None = None):
        state = self.states.read(name, rank)
        if name != MODEL:
            return state
        moved = {ours: state[theirs] for ours, theirs in self.renames.items() if theirs in state}
        return {**state, **moved}


def _recis_state(obj):
    held = getattr(obj, "recis_value", None)
    return held() if held is not None else obj.state_dict()


def _saved(value):
    return lambda out: torch.save(value, out)

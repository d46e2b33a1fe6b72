"""``CheckpointManagerBase``: what the torch and JAX checkpoint managers share.

A run's checkpoints live in :class:`~recis.checkpoint.directory.CheckpointDirectory`;
the manager counts steps, saves every ``save_steps``, restores the newest checkpoint and
warm-starts from a model bank. Front ends say what their tables are (:meth:`engine_tables`), how
a checkpoint's content is written (:meth:`write`, :meth:`metadata`) and read back (:meth:`load`).

With tables sharded over several ranks (:meth:`CheckpointManagerBase.communicator`), every rank
saves and loads together (:mod:`~recis.checkpoint.sharded`): each writes its shard, rank 0
the replicated state, the list and the rotation; each loads the ids it owns, whatever the number
of ranks that saved.
"""

from __future__ import annotations

import abc
import warnings
from collections.abc import Iterable, Mapping
from functools import partial
from pathlib import Path

from recis.checkpoint.candidates import pick
from recis.checkpoint.directory import CheckpointDirectory
from recis.checkpoint.files import MAX_FILE_BYTES, CheckpointError
from recis.checkpoint.loading import merge_counters
from recis.checkpoint.reader import Checkpoint
from recis.checkpoint.sharded import agree, gather_max
from recis.checkpoint.writer import CheckpointWriter
from recis.core.table import EmbeddingTable
from recis.distributed.communicator import Communicator
from recis.framework.model_bank import PARTS, bank_entries


class CheckpointManagerBase(abc.ABC):
    """Step counting, saving, restoring and registration (see the module docstring).

    Args:
        output_dir: the run's directory.
        dataset: the training dataset, whose ``state_dict()`` is saved (name ``"dataset"``).
        save_steps: :meth:`step` saves when the global step is a multiple (≤ 0: never).
        max_to_keep: checkpoints kept (None: all).
        parallel: threads writing files.
        max_file_bytes: size limit of one sparse file.
        communicator: the ranks the tables are sharded over (default: see
            :meth:`communicator`); they save and restore together.
    """

    def __init__(
        self,
        output_dir,
        dataset=None,
        save_steps: int = 1000,
        max_to_keep: int | None = 5,
        parallel: int = 8,
        max_file_bytes: int = MAX_FILE_BYTES,
        communicator: Communicator | None = None,
    ) -> None:
        self._communicator = communicator
        self.directory = CheckpointDirectory(output_dir, max_to_keep)
        self.save_steps = save_steps
        self.writer_options = {"parallel": parallel, "max_file_bytes": max_file_bytes}
        self.io_datasets = {"dataset": dataset} if dataset is not None else {}
        self.objects: dict[str, object] = {}
        self._global_step = 0
        self.restored_from: Path | None = None  # the checkpoint :meth:`restore` loaded
        self.allow_pickle = False  # front ends that can read pickled files of old versions

    @abc.abstractmethod
    def engine_tables(self) -> dict[str, EmbeddingTable]:
        """The physical tables to save, by name."""

    @abc.abstractmethod
    def write(self, tables: dict[str, EmbeddingTable], writer: CheckpointWriter) -> None:
        """Write one checkpoint's content (the tables and the front end's own state); with
        several ranks, each writes its share (rank 0 the replicated state)."""

    @abc.abstractmethod
    def metadata(self) -> dict:
        """JSON-able metadata stored in the checkpoint's index (rank 0's, with several ranks;
        every rank computes it, in the same order of collectives)."""

    @abc.abstractmethod
    def load(
        self,
        checkpoint: Checkpoint,
        parts,
        exclude,
        strict: bool,
        cast: bool = False,
        allow_pickle: bool = False,
    ) -> None:
        """Load ``parts`` of ``checkpoint``, except names matching ``exclude``; ``cast``
        converts tables saved in another dtype (:func:`~recis.checkpoint.plan_load`);
        ``allow_pickle`` reads the pickled files of checkpoints of older versions."""

    def communicator(self) -> Communicator | None:
        """The ranks that save and load together: the one given, else None (one process);
        front ends fall back to their framework's default."""
        return self._communicator

    def place(self) -> tuple[int, int]:
        """(rank, world size) of this process among those of :meth:`communicator`."""
        communicator = self.communicator()
        return (0, 1) if communicator is None else (communicator.rank, communicator.world_size)

    def loadable_parts(self, checkpoint: Checkpoint, parts, strict: bool) -> frozenset[str]:
        """``parts`` of ``checkpoint`` that load here: the data positions (``"io_state"``) are
        each rank's own, so they load only on as many ranks as wrote them; asking for them
        elsewhere with datasets registered and ``strict`` raises :class:`CheckpointError`."""
        saved, here = checkpoint.world_size, self.place()[1]
        if "io_state" not in parts or saved == here:
            return frozenset(parts)
        if strict and self.io_datasets:
            raise CheckpointError(
                f"{checkpoint!r} was saved by {saved} rank(s) and {here} load it: the data "
                f"positions of {sorted(self.io_datasets)} do not carry over; load it without "
                f"'io_state' (e.g. a model bank entry)"
            )
        return frozenset(parts) - {"io_state"}

    @property
    def global_step(self) -> int:
        """Steps counted by :meth:`step` (restored by :meth:`restore`)."""
        return self._global_step

    def register_for_checkpointing(self, name: str, obj) -> None:
        """Also save and restore ``obj`` (anything with ``state_dict``/``load_state_dict``)."""
        self._check_free(name)
        self.objects[name] = obj

    def register_io_state(self, name: str, dataset) -> None:
        """Also save and restore the position of ``dataset`` (part ``"io_state"``)."""
        self._check_free(name)
        self.io_datasets[name] = dataset

    def _check_free(self, name: str) -> None:
        if name in self.objects or name in self.io_datasets:
            raise ValueError(f"{name!r} is already registered")

    def io_states(self) -> dict:
        """The registered datasets' positions."""
        return {name: dataset.state_dict() for name, dataset in self.io_datasets.items()}

    def step(self) -> Path | None:
        """Count a step; save if the step is a multiple of ``save_steps`` (return the path)."""
        self._global_step += 1
        if self.save_steps > 0 and self._global_step % self.save_steps == 0:
            return self.save()
        return None

    def save(self, name: str | None = None) -> Path:
        """Write ``ckpt_<global step>`` (or ``name``) now, list it and drop the oldest
        ``ckpt_<step>`` beyond ``max_to_keep``."""
        tables = self.engine_tables()
        pending = [name for name, table in tables.items() if table.grads]
        if pending:
            warnings.warn(
                f"saving between gradient-accumulation boundaries: the pending gradients of "
                f"{pending} are not saved, so a resumed run will differ",
                stacklevel=2,
            )
        fill = partial(self.write, tables)
        metadata = self.metadata()
        return self.directory.save(
            self._global_step, fill, metadata, self.communicator(), name, **self.writer_options
        )

    def restore(self, step: int | None = None) -> bool:
        """Load ``ckpt_<step>`` entirely; False if there is none.

        Without ``step``, the newest intact checkpoint of the run: rank 0 picks it
        (:func:`~recis.checkpoint.candidates.pick`), checking every file, and warns when it
        falls back past damaged ones or uses one the list does not name. Its path is
        :attr:`restored_from`.
        """
        if step is not None:
            checkpoint = Checkpoint(self.directory.path(step))
        else:
            path = agree(self.communicator(), self._newest_intact, "choosing the checkpoint")
            if path is None:
                return False
            checkpoint = Checkpoint(path)
        self.load(checkpoint, PARTS, (), strict=True)
        self.restored_from = checkpoint.path
        return True

    def _newest_intact(self) -> str | None:
        def open_intact(path) -> str:
            Checkpoint(path).check_files()
            return str(path)

        return pick(self.directory.root, open_intact)

    def sparse_optimizer_metadata(self, core) -> dict | None:
        """The state of a sparse optimizer's core for the index metadata (``None`` without an
        optimizer): the counters are the largest over the ranks (a collective)."""
        state = None if core is None else core.state_dict()
        return gather_max(
            self.communicator(), state, "all-gather of the sparse optimizer's counters"
        )

    def load_model_bank(self, model_bank: Iterable[Mapping] | None) -> None:
        """Warm-start from other checkpoints, in order (entries: see
        :mod:`recis.framework.model_bank`)."""
        for entry in bank_entries(model_bank):
            checkpoint = Checkpoint(entry.path)
            exclude = list(entry.exclude)
            self.load(
                checkpoint, entry.parts, exclude, entry.strict, entry.cast, entry.allow_pickle
            )


SPARSE_OPTIMIZER = "sparse_optimizer"


def saved_sparse_optimizer(checkpoint: Checkpoint, sources: Mapping[str, list[str]]) -> dict | None:
    """The sparse optimizer state of ``checkpoint``'s index metadata (where both front ends
    write it), its per-table counters moved to the tables loaded (``sources``); None if absent."""
    state = checkpoint.metadata.get(SPARSE_OPTIMIZER)
    return None if state is None else with_counters_moved(state, sources)


def with_counters_moved(state: dict, sources: Mapping[str, list[str]]) -> dict:
    """A sparse optimizer ``state`` whose per-table counters follow the tables loaded."""
    counters = {k: v for k, v in state["tables"].items() if isinstance(v, dict)}
    return {**state, "tables": {**state["tables"], **merge_counters(counters, sources)}}

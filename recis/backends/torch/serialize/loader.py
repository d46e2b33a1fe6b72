"""``Loader``: loads a checkpoint directory into hash tables and dense tensors (RecIS API).

Each logical table loads from the checkpoint's table of the same name — exactly (same rows) when
the physical grouping matches and one process saved and loads, else into new rows with values and
slots kept. ``filter_func`` may edit the plan first: skip tables or slots, or load a table from
another one. Under ``torch.distributed`` with several ranks (tables sharded), every rank loads
the ids it owns, whatever the number of ranks that saved the checkpoint.

>>> import tempfile, torch
>>> from recis.nn import HashTable
>>> from recis.serialize import Saver
>>> table = HashTable([-1, 2], name="item")
>>> values = table(torch.tensor([7, 9]))
>>> path = Saver(path=f"{tempfile.mkdtemp()}/ckpt", hashtables={"item": table}).save()
>>> fresh = HashTable([-1, 2], name="item")
>>> loader = Loader(path, hashtables={"item": fresh})
>>> loader.default_load_info()
{'item': {'item': ['embedding']}}
>>> loader.load()
>>> torch.equal(fresh(torch.tensor([7, 9])), values)
True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from recis.backends.torch.communicator import default_communicator
from recis.backends.torch.hashtable import HashTable
from recis.backends.torch.hashtable_access import as_hashtable
from recis.backends.torch.serialize.recis_layout import RecisCheckpoint, is_recis_checkpoint
from recis.backends.torch.serialize.tensors import to_torch
from recis.checkpoint import Checkpoint, CheckpointError, Source, load_tables, plan_load
from recis.distributed.communicator import Communicator

LoadInfo = dict[str, dict[str, list[str]]]


class Loader:
    """Loads the checkpoint at ``checkpoint_path`` into ``hashtables`` and ``tensors`` (in place).

    Args:
        checkpoint_path: a checkpoint directory, or a run directory (its newest checkpoint).
        hashtables: {name: HashTable} to fill.
        tensors: {name: tensor} to overwrite with the saved dense tensors of the same names.
        parallel: threads checking the files' checksums.
        filter_func: edits the load info (see :meth:`default_load_info`) before loading.
        strict: raise :class:`~recis.checkpoint.CheckpointError` when a table, slot or
            tensor is missing on either side; otherwise load what matches.
        communicator: the ranks the tables are sharded over (default: that of
            ``torch.distributed``'s world when it has several ranks).
    """

    def __new__(cls, checkpoint_path, *args, **kwargs):
        if cls is Loader and is_recis_checkpoint(checkpoint_path):
            return super().__new__(RecisLoader)
        return super().__new__(cls)

    def __init__(
        self,
        checkpoint_path,
        hashtables: Mapping[str, HashTable] | None = None,
        tensors: Mapping[str, torch.Tensor] | None = None,
        parallel: int = 16,
        filter_func: Callable[[LoadInfo], LoadInfo] | None = None,
        strict: bool = True,
        communicator: Communicator | None = None,
    ) -> None:
        self.checkpoint = Checkpoint(checkpoint_path)
        tables = (hashtables or {}).items()
        self.tables = {name: as_hashtable(table).table for name, table in tables}
        self.tensors = dict(tensors or {})
        self.parallel = parallel
        self.filter_func = filter_func
        self.strict = strict
        self.communicator = communicator

    def default_load_info(self) -> LoadInfo:
        """{logical table: {checkpoint table to load it from: [fields]}}: every table from the
        one of the same name, with its embedding and every slot (none without tables)."""
        if not self.tables:
            return {}
        plan = plan_load(self.checkpoint, self.tables, strict=self.strict)
        return {name: {source.table: list(source.fields)} for name, source in plan.items()}

    def load(self) -> None:
        """Check the files, then load the tables and tensors."""
        self.checkpoint.check_files(self.parallel)
        info = self.default_load_info()
        if self.filter_func is not None:
            info = self.filter_func(info)
        communicator = (
            self.communicator if self.communicator is not None else default_communicator()
        )
        load_tables(self.checkpoint, self.tables, _plan(info), self.strict, communicator)
        for name, tensor in self.tensors.items():
            if name in self.checkpoint.index["dense"]:
                with torch.no_grad():
                    tensor.copy_(to_torch(self.checkpoint.read_tensor(name)))
            elif self.strict:
                raise CheckpointError(f"{self.checkpoint!r} has no dense tensor {name!r}")


class RecisLoader(Loader):
    """:class:`Loader` of a checkpoint directory written by RecIS itself
    (:mod:`~recis.backends.torch.serialize.recis_layout`); ``Loader(path, ...)`` of such a
    directory is one. Each table ``name`` gets the ids and embeddings of RecIS's
    ``<name>@id``/``<name>@embedding`` (its optimizer slots are not read: new rows start with
    fresh optimizer state), each dense tensor the saved tensor of its name."""

    def __init__(
        self,
        checkpoint_path,
        hashtables: Mapping[str, HashTable] | None = None,
        tensors: Mapping[str, torch.Tensor] | None = None,
        parallel: int = 16,
        filter_func: Callable[[LoadInfo], LoadInfo] | None = None,
        strict: bool = True,
        communicator: Communicator | None = None,
    ) -> None:
        if filter_func is not None or communicator is not None:
            raise ValueError(
                f"Loader {str(checkpoint_path)!r}: a checkpoint written by RecIS loads without "
                "filter_func and communicator (one process)"
            )
        self.recis = RecisCheckpoint(checkpoint_path)
        self.hashtables = {name: as_hashtable(table) for name, table in (hashtables or {}).items()}
        self.tensors = dict(tensors or {})
        self.strict = strict

    def default_load_info(self) -> LoadInfo:
        """{table: {table: ["embedding"]}} for the tables the checkpoint holds."""
        held = [name for name in self.hashtables if self.recis.has(f"{name}@id")]
        return {name: {name: ["embedding"]} for name in held}

    def load(self) -> None:
        for name, table in self.hashtables.items():
            if not self.recis.has(f"{name}@id"):
                self._missing(f"table {name!r}")
                continue
            ids = to_torch(self.recis.read(f"{name}@id"))
            table.insert(ids, to_torch(self.recis.read(f"{name}@embedding")))
        for name, tensor in self.tensors.items():
            if not self.recis.has(name):
                self._missing(f"dense tensor {name!r}")
                continue
            with torch.no_grad():
                tensor.copy_(to_torch(self.recis.read(name)).reshape(tensor.shape))

    def _missing(self, what: str) -> None:
        if self.strict:
            raise CheckpointError(f"{self.recis!r} has no {what}")


def _plan(info: LoadInfo) -> dict[str, Source]:
    plan = {}
    for name, sources in info.items():
        if len(sources) != 1:
            raise ValueError(f"load info: table {name!r} needs exactly one source, got {sources}")
        ((source, fields),) = sources.items()
        plan[name] = Source(source, tuple(fields))
    return plan

"""``Saver``: writes hash tables and dense tensors as one checkpoint directory (RecIS API).

The directory appears atomically: it is written beside its final place, fsynced and renamed.
Under ``torch.distributed`` with several ranks the tables are sharded, and every rank calls
:meth:`Saver.save` together: each writes its shard, rank 0 the dense tensors and the merged
index (:mod:`recis.checkpoint.sharded`).

>>> import tempfile, torch
>>> from recis.nn import HashTable
>>> from recis.serialize import CheckpointReader
>>> table = HashTable([-1, 2], name="item")
>>> _ = table(torch.tensor([7, 9]))
>>> path = Saver(path=f"{tempfile.mkdtemp()}/ckpt", hashtables={"item": table},
...              tensors={"bias": torch.zeros(3)}).save()
>>> CheckpointReader(path).tensor_names()
['bias', 'item/@rows.free', 'item/@rows.high_water', 'item/embedding', 'item/id', 'item/row']
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from os import PathLike
from pathlib import Path

import torch

from recis.backends.torch.communicator import default_communicator
from recis.backends.torch.hashtable import HashTable
from recis.backends.torch.hashtable_access import as_hashtable
from recis.backends.torch.serialize.tensors import to_numpy
from recis.checkpoint import MAX_FILE_BYTES, CheckpointWriter, checkpoint_writer
from recis.distributed.communicator import Communicator


class Saver:
    """Writes ``hashtables`` ({name: HashTable}) and dense ``tensors`` ({name: tensor}) to ``path``.

    The arguments are RecIS's, in its order, then options of ours (by keyword).

    Args:
        shard_index, shard_num: this process's rank and the number of ranks saving together;
            they must agree with the ``communicator`` (one process: 0 and 1).
        parallel: threads writing files.
        path: the checkpoint directory to write (an existing one is replaced).
        hashtables: the tables, e.g. ``filter_out_sparse_param(model)``; each is saved with its
            rows, optimizer slots and admission/eviction state.
        tensors: dense tensors, saved by name.
        filter_func: takes the names to write (tables, then tensors) and returns those to keep
            (RecIS's filter of its write blocks); default: all.
        max_file_bytes: size limit of one file; larger tables are split over several.
        communicator: the ranks saving together (default: that of ``torch.distributed``'s
            world when it has several ranks, which the tables are then sharded over).
    """

    def __init__(
        self,
        shard_index: int = 0,
        shard_num: int = 1,
        parallel: int = 8,
        path=".",
        hashtables: Mapping[str, HashTable] | None = None,
        tensors: Mapping[str, torch.Tensor] | None = None,
        filter_func: Callable[[list[str]], list[str]] | None = None,
        *,
        max_file_bytes: int = MAX_FILE_BYTES,
        communicator: Communicator | None = None,
    ) -> None:
        if isinstance(shard_index, str | PathLike):
            raise TypeError(
                f"Saver: the first argument is shard_index (RecIS's order); "
                f"pass path={shard_index!r}"
            )
        self.shard_index, self.shard_num = int(shard_index), int(shard_num)
        self.path = Path(path).resolve()
        self.hashtables = {name: as_hashtable(t) for name, t in (hashtables or {}).items()}
        self.tensors = dict(tensors or {})
        self.filter_func = filter_func
        self.parallel = parallel
        self.max_file_bytes = max_file_bytes
        self.communicator = communicator

    def save(self, metadata: Mapping | None = None) -> Path:
        """Write the checkpoint (``metadata`` goes to its index; rank 0's with several ranks,
        where this is a collective); return its path."""
        communicator = (
            self.communicator if self.communicator is not None else default_communicator()
        )
        self._check_shard(communicator)
        options = {"parallel": self.parallel, "max_file_bytes": self.max_file_bytes}
        with checkpoint_writer(self.path, communicator, **options) as writer:
            self.write(writer)
            return writer.commit(metadata)

    def _check_shard(self, communicator: Communicator | None) -> None:
        rank, world = (
            (0, 1) if communicator is None else (communicator.rank, communicator.world_size)
        )
        if (self.shard_index, self.shard_num) != (rank, world):
            raise ValueError(
                f"Saver {str(self.path)!r}: shard {self.shard_index} of {self.shard_num} does not "
                f"match this process, rank {rank} of {world}"
            )

    def write(self, writer: CheckpointWriter) -> None:
        """Add the tables and tensors to a checkpoint being written (e.g. with more files)."""
        names = [*self.hashtables, *self.tensors]
        kept = set(self.filter_func(list(names)) if self.filter_func is not None else names)
        tables = {n: t.table for n, t in self.hashtables.items() if n in kept}
        writer.write_tables(tables)
        tensors = {n: to_numpy(t) for n, t in self.tensors.items() if n in kept}
        if tensors:
            writer.write_dense(tensors)

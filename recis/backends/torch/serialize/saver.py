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
>>> path = Saver(f"{tempfile.mkdtemp()}/ckpt", hashtables={"item": table},
...              tensors={"bias": torch.zeros(3)}).save()
>>> CheckpointReader(path).tensor_names()
['bias', 'item/@rows.free', 'item/@rows.high_water', 'item/embedding', 'item/id', 'item/row']
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from recis.backends.torch.communicator import default_communicator
from recis.backends.torch.hashtable import HashTable
from recis.backends.torch.serialize.tensors import to_numpy
from recis.checkpoint import MAX_FILE_BYTES, CheckpointWriter, checkpoint_writer
from recis.distributed.communicator import Communicator


class Saver:
    """Writes ``hashtables`` ({name: HashTable}) and dense ``tensors`` ({name: tensor}) to ``path``.

    Args:
        path: the checkpoint directory to write (an existing one is replaced).
        hashtables: the tables, e.g. ``filter_out_sparse_param(model)``; each is saved with its
            rows, optimizer slots and admission/eviction state.
        tensors: dense tensors, saved by name.
        parallel: threads writing files.
        max_file_bytes: size limit of one file; larger tables are split over several.
        communicator: the ranks saving together (default: that of ``torch.distributed``'s
            world when it has several ranks, which the tables are then sharded over).
    """

    def __init__(
        self,
        path,
        hashtables: Mapping[str, HashTable] | None = None,
        tensors: Mapping[str, torch.Tensor] | None = None,
        parallel: int = 8,
        max_file_bytes: int = MAX_FILE_BYTES,
        communicator: Communicator | None = None,
    ) -> None:
        self.path = Path(path).resolve()
        self.hashtables = dict(hashtables or {})
        self.tensors = dict(tensors or {})
        self.parallel = parallel
        self.max_file_bytes = max_file_bytes
        self.communicator = communicator

    def save(self, metadata: Mapping | None = None) -> Path:
        """Write the checkpoint (``metadata`` goes to its index; rank 0's with several ranks,
        where this is a collective); return its path."""
        communicator = (
            self.communicator if self.communicator is not None else default_communicator()
        )
        options = {"parallel": self.parallel, "max_file_bytes": self.max_file_bytes}
        with checkpoint_writer(self.path, communicator, **options) as writer:
            self.write(writer)
            return writer.commit(metadata)

    def write(self, writer: CheckpointWriter) -> None:
        """Add the tables and tensors to a checkpoint being written (e.g. with more files)."""
        writer.write_tables({name: table.table for name, table in self.hashtables.items()})
        if self.tensors:
            writer.write_dense({name: to_numpy(t) for name, t in self.tensors.items()})

"""``HashTable``: an engine embedding table as a torch module (RecIS API).

A HashTable maps raw int64 ids to trainable rows. Calling it looks ids up (inserting new ones in
training mode) and returns their rows as a tensor whose gradient goes to the table; a sparse
optimizer from :mod:`recis.optim` applies it. It is not an ``nn.Parameter``, so dense optimizers
and DDP ignore it; :func:`filter_out_sparse_param` finds the tables of a model.

``HashTable(..., device="cuda")`` keeps ids, rows, optimizer state and gradients on the GPU: it
takes id tensors on its device (others are moved there) and returns CUDA tensors, its kernels
running on torch's current stream.

>>> import torch
>>> table = HashTable([-1, 4], name="item")
>>> table(torch.tensor([7, 7, 9])).shape
torch.Size([3, 4])
>>> len(table.table), list(filter_out_sparse_param(torch.nn.Sequential(table)))
(2, ['item'])
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

import ml_dtypes
import numpy as np
import torch
from torch import nn

from recis.backends.torch.autograd import rows_tensor
from recis.backends.torch.bridge import as_engine, as_tensor, beside_torch, engine_device
from recis.backends.torch.communicator import default_communicator
from recis.backends.torch.hashtable_access import TableAccess
from recis.backends.torch.initializers import ConstantInitializer, Initializer
from recis.core.initializers import Initializer as CoreInitializer
from recis.core.policies import Admission, LookupStats
from recis.core.table import EmbeddingTable
from recis.core.tiers import DeviceTiers, StorageTiers
from recis.distributed.exchange import ShardedTable, shard_of
from recis.embedding.embedder import distinct_keys, find_rows
from recis.embedding.policy_hooks import AdmitHook, FilterHook

_TABLES: weakref.WeakSet = weakref.WeakSet()


def live_hashtables() -> list[HashTable]:
    """Every HashTable alive in this process (e.g. for hooks that act on all tables)."""
    return list(_TABLES)


class HashTable(TableAccess, nn.Module):
    """A growable embedding table of rows shaped ``embedding_shape`` (see module docstring).

    Args:
        embedding_shape: a row's shape, ``[dim]`` or several dimensions such as ``[2, 3]``
            (stored as one row of their product); a leading ``-1`` (``[-1, dim]``, the table
            grows) is ignored.
        block_size: rows per storage block (rounded up to a power of two).
        dtype: storage dtype (``torch.float32``, ``torch.bfloat16`` or ``torch.float16``); the
            optimizer's math is float32 whatever the storage.
        device: ``"cpu"``, or ``"cuda"`` (``"cuda:N"``) for a table on the GPU (torch's current
            device, or device N, which must be torch's current device when the table is used):
            ids are moved there.
        coalesced, children: store several logical tables (``children``) in this one.
        initializer: initial row values (per id; default zeros).
        name: the table's name.
        grad_reduce_by: ``"worker"`` sums the gradients of an id's occurrences; ``"id"`` averages
            them.
        filter_hook: eviction policy (:class:`~recis.nn.hashtable_hook.FilterHook`).
        admit_hook: default admission policy (:class:`~recis.nn.hashtable_hook.AdmitHook`); a
            lookup may name another (``table(ids, admit_hook=...)``).
        seed: seed of the per-id initial values (a ``generator`` given to the initializer wins).
        capacity: expected number of ids, to size the id map up front.
        storage: optional :class:`~recis.core.tiers.StorageTiers`: rows beyond its RAM budget
            live on disk (default: every row in RAM); on a GPU a
            :class:`~recis.core.tiers.DeviceTiers`: rows beyond its device budget live in
            pinned host memory.
        trainable: False for a table no feature trains: sparse optimizers given it add no
            state to its rows (:meth:`requires_optimizer_state`).
    """

    recis_slot_prefix: str | None = None
    """RecIS's prefix of the optimizer state names of this table's slots (e.g.
    ``"sparse_adagrad_"``), set by the sparse optimizer that updates it."""

    def __init__(
        self,
        embedding_shape,
        block_size: int = 16384,
        dtype: torch.dtype = torch.float32,
        device="cpu",
        coalesced: bool = False,
        children: list[str] | None = None,
        slice=None,  # RecIS's argument; sharding over ranks is configured elsewhere
        initializer=None,
        name: str = "hashtable",
        grad_reduce_by: str = "worker",
        filter_hook: FilterHook | None = None,
        admit_hook: AdmitHook | None = None,
        seed: int = 0,
        capacity: int = 1024,
        storage: StorageTiers | DeviceTiers | None = None,
        trainable: bool = True,
    ) -> None:
        super().__init__()
        if grad_reduce_by not in ("worker", "id"):
            raise ValueError(f"HashTable {name!r}: grad_reduce_by must be 'worker' or 'id'")
        self.device = table_device(device, name)
        initializer = initializer if initializer is not None else ConstantInitializer()
        self.row_shape = row_shape(embedding_shape, name)
        width = math.prod(self.row_shape)
        _build_for_table(initializer, [int(block_size), width], dtype, name)
        seed = getattr(initializer, "seed", None) or seed
        with engine_device(self.device), _gpu_engine_needed(name, self.device):
            self.table = EmbeddingTable(
                name,
                width,
                initializer,
                seed=seed,
                dtype=storage_dtype(dtype),
                block_rows=1 << max(0, int(block_size) - 1).bit_length(),
                capacity=capacity,
                children=children if coalesced or children else None,
                admission=admit_hook.build() if admit_hook is not None else None,
                eviction=filter_hook.build() if filter_hook is not None else None,
                device=self.device.type,
                storage=storage,
            )
        self.name = name
        self.dtype = dtype
        self.grad_reduce_by = grad_reduce_by
        self.trainable = trainable
        self._trigger = torch.zeros((), requires_grad=True)  # makes autograd call our backward
        self._admissions: dict[str, Admission] = {}  # per-lookup admit hooks, built once each
        _TABLES.add(self)

    @property
    def shard(self) -> ShardedTable | None:
        """This rank's shard under torch.distributed with several ranks (else None): the table
        then holds the ids whose owner (:mod:`recis.distributed.sharding`) is this rank."""
        comm = default_communicator()
        if comm is None:
            return None
        return shard_of(self.table, comm)

    @property
    def last_stats(self) -> LookupStats:
        """Ids new, admitted, refused and evicted by the last lookup (of this rank's shard, when
        the table is sharded over ranks)."""
        return self.table.last_stats

    def requires_optimizer_state(self) -> bool:
        """Whether sparse optimizers keep state for this table's rows (it is trainable)."""
        return self.trainable

    @property
    def _hashtable(self) -> HashTable:
        """The table itself: RecIS reaches a table through ``DynamicEmbedding._hashtable``,
        and this package's engines hold the tables directly."""
        return self

    @property
    def dim(self) -> int:
        """Values per row (the product of :attr:`row_shape`)."""
        return self.table.dim

    @property
    def children_names(self) -> list[str]:
        return self.table.children

    def extra_repr(self) -> str:
        device = "" if self.device.type == "cpu" else f", device={str(self.device)!r}"
        return f"name={self.name!r}, dim={self.dim}, ids={len(self.table)}{device}"

    @property
    def sync_free(self) -> bool:
        """Whether training steps never wait for the GPU: an unsharded
        :attr:`EmbeddingTable.sync_free <recis.core.table.EmbeddingTable.sync_free>` table,
        whose lookups then take distinct ids padded with ids of count 0."""
        return self.shard is None and self.table.sync_free

    def forward(
        self, ids: torch.Tensor, admit_hook: AdmitHook | None = None, tags=None
    ) -> torch.Tensor:
        """Rows of ``ids`` (any shape; moved to the table's device) as a float32 tensor
        ``ids.shape + row_shape``; ``tags`` (one per id, or one for all) name logical tables.
        ``admit_hook`` decides, for this lookup, which new ids get rows (e.g.
        ``AdmitHook("ReadOnly")``: none; they read zeros and get no update); anything else in
        its place is taken as ``tags``.

        Under torch.distributed with several ranks this is a collective (the table is sharded
        over the ranks).
        """
        if admit_hook is not None and not isinstance(admit_hook, AdmitHook):
            if tags is not None:
                raise TypeError(f"HashTable {self.name!r}: admit_hook must be an AdmitHook")
            admit_hook, tags = None, admit_hook  # tags given in second place, as before
        if admit_hook is None:
            return self._lookup(ids, tags)
        with self._admitting(admit_hook):
            return self._lookup(ids, tags)

    @contextmanager
    def _admitting(self, admit_hook: AdmitHook) -> Iterator[None]:
        """Let ``admit_hook``'s policy decide admissions inside the block."""
        key = admit_hook.info()
        if key not in self._admissions:
            self._admissions[key] = self.table._placed(admit_hook.build())
        default, self.table.admission = self.table.admission, self._admissions[key]
        try:
            yield
        finally:
            self.table.admission = default

    @beside_torch
    def _lookup(self, ids: torch.Tensor, tags) -> torch.Tensor:
        flat = as_engine(ids.reshape(-1).to(self.device), "ids")
        if tags is not None and np.ndim(tags) > 0:
            tags = as_engine(torch.as_tensor(tags).reshape(-1).to(self.device), "tags")
        keys = distinct_keys(flat, tags, self.sync_free)
        train = self.training and torch.is_grad_enabled()
        by_id = [self.grad_reduce_by == "id"]
        (found,) = find_rows([self.table], [keys], train, by_id, default_communicator())
        values = rows_tensor(found, train=train, trigger=self._trigger)
        return values[as_tensor(keys.index)].reshape(*ids.shape, *self.row_shape)


def filter_out_trainable_sparse_param(model: nn.Module) -> dict[str, HashTable]:
    """The model's trainable hash tables by name (those that keep optimizer state)."""
    tables = filter_out_sparse_param(model)
    return {name: table for name, table in tables.items() if table.requires_optimizer_state()}


def filter_out_sparse_param(model: nn.Module) -> dict[str, HashTable]:
    """The model's hash tables by name (what sparse optimizers take)."""
    tables = {}
    for module in model.modules():
        if isinstance(module, HashTable):
            if module.name in tables and tables[module.name] is not module:
                raise ValueError(f"two hash tables are named {module.name!r}")
            tables[module.name] = module
    return tables


def row_shape(embedding_shape, name: str) -> tuple[int, ...]:
    """The shape of one row: ``embedding_shape`` without a leading -1.

    >>> row_shape([-1, 8], "t"), row_shape([2, 3], "t")
    ((8,), (2, 3))
    """
    shape = tuple(int(n) for n in embedding_shape)
    shape = shape[1:] if len(shape) > 1 and shape[0] == -1 else shape
    if not shape or any(n < 1 for n in shape):
        raise ValueError(
            f"HashTable {name!r}: embedding_shape must be [dim] or [d0, d1, ...] with positive "
            f"sizes (a leading -1 allowed), got {list(embedding_shape)}"
        )
    return shape


def _build_for_table(initializer, shape: list[int], dtype, name: str) -> None:
    """Give a RecIS-protocol initializer the table's block shape and dtype and build it, as
    RecIS's HashTable does (unless it was built already, e.g. for another table)."""
    if not isinstance(initializer, CoreInitializer):
        raise TypeError(
            f"HashTable {name!r}: initializer must be one of recis.nn.initializers' classes, "
            f"got {type(initializer).__name__}"
        )
    if isinstance(initializer, Initializer) and initializer.impl() is None:
        initializer.set_shape(shape)
        initializer.set_dtype(dtype)
        initializer.build()


@contextmanager
def _gpu_engine_needed(name: str, device: torch.device) -> Iterator[None]:
    """Name the table in the engine's ImportError for a GPU table without CuPy."""
    try:
        yield
    except ImportError as error:
        raise ImportError(
            f"HashTable {name!r}: device {str(device)!r} needs the GPU engine, which needs CuPy "
            f"and a CUDA device (pip install 'recis[cuda]'): {error}"
        ) from error


def table_device(device, name: str) -> torch.device:
    """The torch device of a table: ``"cpu"``, or a CUDA device (default: torch's current one).

    >>> table_device("cpu", "t")
    device(type='cpu')
    """
    device = torch.device(device)
    if device.type == "cuda" and device.index is None and torch.cuda.is_available():
        device = torch.device("cuda", torch.cuda.current_device())
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"HashTable {name!r}: device must be 'cpu' or 'cuda', got {device}")
    return device


def storage_dtype(dtype) -> np.dtype:
    """The NumPy dtype of table rows stored as torch ``dtype`` (a NumPy dtype passes through)."""
    names = {
        torch.float32: np.float32,
        torch.float16: np.float16,
        torch.bfloat16: ml_dtypes.bfloat16,
    }
    if isinstance(dtype, torch.dtype) and dtype not in names:
        raise TypeError(f"table dtype must be float32, float16 or bfloat16, got {dtype}")
    return np.dtype(names.get(dtype, dtype))

"""RecIS's direct access to a HashTable's rows and gradients, outside lookups.

:class:`TableAccess` is mixed into :class:`~recis.backends.torch.hashtable.HashTable`: set rows
(``insert``), read what the table holds (``ids``, ``embeddings`` and their pairings, in row
order, so that they line up), add and read gradients by row (``accept_grad``, ``grad``) and
empty the table (``clear``). :class:`HashtableImpl` is the same table seen as RecIS's
implementation object (``HashTable._hashtable_impl``), for code that reaches for it.

>>> import torch
>>> from recis.backends.torch.hashtable import HashTable
>>> table = HashTable([-1, 2], name="access_example")
>>> table.insert(torch.tensor([5, 9]), torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
>>> table.ids().tolist(), table.embeddings().tolist()
([5, 9], [[1.0, 2.0], [3.0, 4.0]])
>>> index, _ = table.ids_map()
>>> table.accept_grad(index, torch.ones(2, 2))
>>> table.grad().coalesce().values().tolist()
[[1.0, 1.0], [1.0, 1.0]]
"""

from __future__ import annotations

import numpy as np
import torch

from recis.backends.torch.bridge import as_engine, as_tensor, beside_torch
from recis.backends.torch.optim.squared_gradients import accept_grad_sq
from recis.backends.torch.slot_group import SlotGroup
from recis.core.id_map import Entries
from recis.core.row_store import EMBEDDING


class TableAccess:
    """Direct access methods of a HashTable (see the module docstring); ``child`` names one of
    the logical tables of a coalesced table (default: all of them)."""

    @beside_torch
    def insert(self, ids: torch.Tensor, embeddings: torch.Tensor) -> None:
        """Set the rows of ``ids`` to ``embeddings`` ``[len(ids), *row_shape]``, creating rows
        for new ids (their optimizer slots start fresh); for a repeated id the last row wins."""
        ids = self._engine_ids(ids)
        values = torch.as_tensor(embeddings).to(self.device, torch.float32)
        if tuple(values.shape) != (ids.size, *self.row_shape):
            raise ValueError(
                f"HashTable {self.name!r}: insert needs embeddings {[ids.size, *self.row_shape]}, "
                f"got {list(values.shape)}"
            )
        values = values.reshape(ids.size, self.dim)
        rows = self.table.find_or_insert(ids).rows
        self.table.store.scatter(rows, as_engine(values, "embeddings"))
        self.table.written(rows)

    def ids(self, child: str | None = None) -> torch.Tensor:
        """The ids the table holds (int64), in row order."""
        return as_tensor(self._entries(child).keys)

    def embeddings(self, child: str | None = None) -> torch.Tensor:
        """The rows (float32 ``[n, *row_shape]``) of :meth:`ids`, in the same order."""
        return self._rows_of(self._entries(child))

    def ids_map(self, child: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(ids, rows)``: the ids and the row index of each."""
        entries = self._entries(child)
        return as_tensor(entries.keys), as_tensor(entries.rows)

    def embeddings_map(self, child: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(rows, embeddings)``: row indices and their values."""
        entries = self._entries(child)
        return as_tensor(entries.rows), self._rows_of(entries)

    def ids_embeddings(self, child: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(ids, embeddings)``, as :meth:`ids` and :meth:`embeddings`."""
        entries = self._entries(child)
        return as_tensor(entries.keys), self._rows_of(entries)

    def snap_shot(self, child: str | None = None):
        """``(ids, rows, embeddings)`` of everything the table holds."""
        entries = self._entries(child)
        return as_tensor(entries.keys), as_tensor(entries.rows), self._rows_of(entries)

    def raw_embeddings(self) -> torch.Tensor:
        """Every row's embedding (float32 ``[rows, *row_shape]``), indexed by row, free rows
        too."""
        values = self.slot_group().slot_by_name(EMBEDDING).value()
        return values.reshape(-1, *self.row_shape)

    def slot_group(self) -> SlotGroup:
        """The table's per-row slots by RecIS's names (:mod:`~recis.backends.torch.slot_group`)."""
        return SlotGroup(self)

    @beside_torch
    def accept_grad(self, grad_index: torch.Tensor, grad: torch.Tensor) -> None:
        """Add ``grad[i]`` to the gradient of row ``grad_index[i]`` (rows as :meth:`ids_map`
        gives them; -1 is dropped), for the next optimizer step."""
        rows = as_engine(torch.as_tensor(grad_index).reshape(-1).to(self.device), "grad_index")
        grad = torch.as_tensor(grad).to(self.device, torch.float32).reshape(rows.size, -1)
        self.table.grads.add(rows.astype(np.int64), as_engine(grad, "grad"))

    def grad(self, acc_step: int = 1) -> torch.Tensor:
        """The gradients received since the last step, summed per row and divided by
        ``acc_step``: a sparse COO tensor ``[rows, *row_shape]`` indexed by row."""
        rows, summed = self.table.grads.summed(divisor=acc_step)
        kept = rows >= 0  # on the GPU, entries of dropped rows stay as row -1
        rows, summed = as_tensor(rows[kept]), as_tensor(summed[kept])
        num_rows = self.table.store.capacity
        if rows.numel():
            num_rows = max(num_rows, int(rows.max()) + 1)
        summed = summed.reshape(-1, *self.row_shape)
        return torch.sparse_coo_tensor(
            rows[None], summed, (num_rows, *self.row_shape), check_invariants=True
        )

    def clear_grad(self) -> None:
        """Drop the gradients received since the last step."""
        self.table.grads.clear()

    def clear(self, child: str | None = None) -> None:
        """Remove every id (of ``child``); their rows are reused by later inserts."""
        entries = self._entries(child)
        self.table.erase(entries.keys, entries.tags)
        self.table.grads.clear()

    def reset(self) -> None:
        """Remove every id and free the row storage."""
        self.table.ids.clear()
        self.table.store.clear()
        self.table.grads.clear()

    def initializer(self):
        """The initializer of new rows."""
        return self.table.initializer

    @property
    def children_hashtable(self) -> list[str]:
        """Names of the logical tables stored in this one."""
        return list(self.table.children)

    @property
    def _hashtable_impl(self) -> HashtableImpl:
        return HashtableImpl(self)

    def _engine_ids(self, ids) -> np.ndarray:
        ids = torch.as_tensor(ids).reshape(-1).to(self.device, torch.int64)
        return as_engine(ids, "ids")

    def _entries(self, child: str | None) -> Entries:
        """The table's entries (of ``child``), ordered by row."""
        entries = self.table.ids.export()
        if child is not None:
            if child not in self.table.children:
                raise KeyError(
                    f"HashTable {self.name!r} has no child {child!r}; it has {self.table.children}"
                )
            mine = entries.tags == self.table.children.index(child)
            entries = Entries(entries.keys[mine], entries.tags[mine], entries.rows[mine])
        order = entries.rows.argsort()
        return Entries(entries.keys[order], entries.tags[order], entries.rows[order])

    @beside_torch
    def _rows_of(self, entries: Entries) -> torch.Tensor:
        return as_tensor(self.table.gather(entries.rows)).reshape(-1, *self.row_shape)


class HashtableImpl:
    """A HashTable seen as RecIS's implementation object (``HashTable._hashtable_impl``)."""

    def __init__(self, table: TableAccess) -> None:
        self._table = table

    def insert(self, ids, embeddings) -> None:
        self._table.insert(ids, embeddings)

    @beside_torch
    def embedding_lookup(self, ids: torch.Tensor, readonly: bool = False):
        """``(rows, embeddings)`` of ``ids``: new ids get rows unless ``readonly`` (then their
        row is -1 and they read zeros)."""
        table, keys = self._table.table, self._table._engine_ids(ids)
        rows = table.find(keys) if readonly else table.find_or_insert(keys).rows
        values = table.gather(rows).reshape(-1, *self._table.row_shape)
        return as_tensor(rows), as_tensor(values)

    def accept_grad(self, grad_index, grad) -> None:
        self._table.accept_grad(grad_index, grad)

    def grad(self, acc_step: int = 1) -> torch.Tensor:
        return self._table.grad(acc_step)

    def clear_grad(self) -> None:
        self._table.clear_grad()

    def slot_group(self) -> SlotGroup:
        return self._table.slot_group()

    def accept_grad_sq(self, grad_index, grad_sq) -> None:
        """Add squared gradients of rows (for RecIS's ``*Sum`` Adagrad optimizers)."""
        accept_grad_sq(self._table, grad_index, grad_sq)

    def ids(self, child=None) -> torch.Tensor:
        return self._table.ids(child)

    def embs(self, child=None) -> torch.Tensor:
        return self._table.embeddings(child)

    def ids_embs(self, child=None):
        return self._table.ids_embeddings(child)

    def clear(self, child=None) -> None:
        self._table.clear(child)

    def reset(self) -> None:
        self._table.reset()


def as_hashtable(table):
    """The HashTable behind ``table``: a HashTable, or its :class:`HashtableImpl` (what RecIS's
    ``state_dict`` holds for a table)."""
    return table._table if isinstance(table, HashtableImpl) else table

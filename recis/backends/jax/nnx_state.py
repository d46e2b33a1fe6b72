"""RecIS tables as Flax NNX state: :class:`SparseTable` variables holding :class:`TableHandle` s.

An engine table lives outside JAX, so an NNX variable cannot hold it as an array. A
:class:`TableHandle` is a JAX pytree with no leaves that carries the table as static data:
``nnx.state``, ``nnx.split``/``nnx.merge``, ``nnx.display``, ``nnx.jit`` and ``nnx.eval_shape``
see and pass it, while gradients, optax and ``jit`` see nothing to trace. :class:`SparseTable`
is the variable type (filter ``SparseTable`` in ``nnx.state(model, SparseTable)``). A copy made
outside JAX transformations (``nnx.clone``, ``nnx.merge(..., copy=True)``) copies the table
itself: rows, optimizer slots and policy state; the copies inside a transformation (which NNX
makes of every variable) share it. :func:`sparse_tables` finds the tables of a model or a state,
e.g. for the orbax handler of :mod:`recis.backends.jax.orbax`.

>>> import numpy as np
>>> from recis.core.table import EmbeddingTable
>>> variable = SparseTable(TableHandle(EmbeddingTable("item", dim=2)))
>>> _ = variable.table.find_or_insert(np.array([7, 8]))
>>> copy = variable.copy()
>>> _ = copy.table.find_or_insert(np.array([9]))
>>> len(variable.table), len(copy.table)
(2, 3)
>>> sorted(sparse_tables({"layer": variable}))
['item']
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import jax
from flax import nnx

from recis.backends.jax.misuse import under_transformation
from recis.core.table import EmbeddingTable


def _same_kind(table: EmbeddingTable) -> EmbeddingTable:
    """A new empty table built like ``table``, its eviction policy copied (a stateful admission
    policy cannot be copied here: build the handle with ``make_empty``)."""
    if table.admission.stateful:
        raise ValueError(
            f"table {table.name!r}: copying a table with a stateful admission policy needs "
            "TableHandle(table, make_empty=...) to build its policy afresh"
        )
    return EmbeddingTable(
        table.name, table.dim, initializer=table.initializer, seed=table.seed,
        dtype=table.store.fields["embedding"].dtype, block_rows=table.store.block_rows,
        max_size=table.ids.max_size, children=table.children, admission=table.admission,
        eviction=copy.copy(table.eviction), device=table.device, storage=table.storage,
    )  # fmt: skip


@jax.tree_util.register_pytree_node_class
class TableHandle:
    """A reference to an engine ``table`` as a JAX pytree with no leaves (the table is its
    static data, compared by identity). ``make_empty`` builds an empty table like it (default:
    the same constructor arguments; an embedding layer passes its option's ``make_table``)."""

    def __init__(
        self, table: EmbeddingTable, make_empty: Callable[[], EmbeddingTable] | None = None
    ) -> None:
        self.table = table
        self.make_empty = make_empty

    def tree_flatten(self):
        return (), (self.table, self.make_empty)

    @classmethod
    def tree_unflatten(cls, static, children) -> TableHandle:
        return cls(*static)

    def __eq__(self, other) -> bool:
        return isinstance(other, TableHandle) and other.table is self.table

    def __hash__(self) -> int:
        return id(self.table)

    def __repr__(self) -> str:
        return f"TableHandle({self.table!r})"

    def copy(self) -> TableHandle:
        """A handle of a deep copy of the table: ids, rows, slots, policy state, counters."""
        fresh = self.make_empty() if self.make_empty is not None else _same_kind(self.table)
        for name, field in self.table.store.fields.items():
            if name not in fresh.store.fields:  # optimizer slots
                fresh.store.add_slot(name, field.shape, field.dtype, field.fill)
        fresh.load_state_dict(self.table.state_dict())
        fresh.stats_total = copy.copy(self.table.stats_total)
        return TableHandle(fresh, self.make_empty)


class SparseTable(nnx.Variable):
    """An NNX variable holding a :class:`TableHandle` (see the module docstring)."""

    @property
    def table(self) -> EmbeddingTable:
        """The engine table."""
        return self.get_value().table

    def copy(self, *args, **kwargs) -> SparseTable:
        """A copy of this variable; outside JAX transformations, of its table too."""
        out = super().copy(*args, **kwargs)
        handle = out.get_value()
        shared = isinstance(handle, TableHandle) and handle == self.get_value()
        if shared and not under_transformation():
            out.set_value(handle.copy())
        return out


def sparse_tables(tree) -> dict[str, EmbeddingTable]:
    """The engine tables of the :class:`SparseTable` s in ``tree`` (an NNX module, a state or
    any pytree), by table name; two different tables of one name are an error."""
    if isinstance(tree, nnx.Module):
        tree = nnx.state(tree, SparseTable)
    handles = jax.tree.leaves(tree, is_leaf=lambda x: isinstance(x, TableHandle))
    tables: dict[str, EmbeddingTable] = {}
    for handle in (h for h in handles if isinstance(h, TableHandle)):
        known = tables.setdefault(handle.table.name, handle.table)
        if known is not handle.table:
            raise ValueError(
                f"two different tables are named {handle.table.name!r}: give their features "
                "distinct shared_name values"
            )
    return tables

"""Sharded lookups and gradient pushes: ids go to the ranks that own their rows, rows come back.

A training step on ``W`` ranks, per physical table (``ShardedTable``, this rank's shard):

1. **lookup** — each rank deduplicates its ids, groups them by owner
   (:func:`~recis.distributed.sharding.owners`) and sends each owner its ids with their tags and
   occurrence counts. One count exchange covers every table of the step (the only host sync);
   the id exchanges of all tables are then started together, so they overlap one another and the
   owners' work. An owner deduplicates what it received (ranks share ids), looks the ids up once
   with their summed counts — inserting new ids and applying admission exactly as one process
   would on the whole batch — and sends each rank its rows.
2. **gradients** — backward passes record the gradient of each looked-up row
   (:meth:`ShardedTable.add_gradients`); at the optimizer step :func:`push_gradients` sends them to
   the owners (again one count exchange, then all tables' exchanges at once), where they are added
   to the table's gradient buffer, so duplicates from all ranks are summed before the sparse
   optimizer. Gradients are averaged over ranks, as DDP averages dense gradients: ``W`` ranks that
   split a global batch train like one process on it.

>>> import numpy as np
>>> from recis.core.table import EmbeddingTable
>>> from recis.distributed.communicator import SingleProcess
>>> shard = ShardedTable(EmbeddingTable("item", dim=2), SingleProcess())
>>> (reply,) = lookup([LookupRequest(shard, np.array([4, 9]), None, np.array([1, 2]))], True)
>>> reply.values.shape, len(shard.table)
((2, 2), 2)
>>> shard.add_gradients(reply, np.ones((2, 2), np.float32))
>>> push_gradients([shard])  # the tables that had gradients on some rank
['item']
>>> rows, grads = shard.table.grads.summed(1)
>>> grads.tolist()
[[1.0, 1.0], [1.0, 1.0]]
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from recis.core.dedupe import first_occurrences
from recis.core.table import EmbeddingTable
from recis.distributed.communicator import Communicator
from recis.distributed.sharding import group_by_owner, owners


@dataclass
class ShardedTable:
    """This rank's shard of a physical table, and the gradients it owes other shards."""

    table: EmbeddingTable
    comm: Communicator
    pending: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = field(
        default_factory=list
    )

    def __post_init__(self) -> None:
        if self.table.device != "cpu" and self.comm.world_size > 1:
            raise NotImplementedError(
                f"table {self.name!r} is on {self.table.device}: lookups sharded over "
                f"{self.comm.world_size} ranks need a CPU table (the exchange of ids, rows and "
                f"gradients between ranks runs on the host)"
            )

    @property
    def name(self) -> str:
        return self.table.name

    def add_gradients(self, reply: LookupReply, grads: np.ndarray) -> None:
        """Record ``grads`` [U, dim] for the ids of ``reply``, to be pushed at the next step."""
        grads = np.asarray(grads, np.float32)
        if grads.shape != reply.values.shape:
            raise ValueError(
                f"table {self.name!r}: gradients {list(grads.shape)} do not match the "
                f"looked-up rows {list(reply.values.shape)}"
            )
        self.pending.append((reply.ids, reply.tags, reply.owner, grads))


_SHARDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def shard_of(table: EmbeddingTable, comm: Communicator) -> ShardedTable:
    """The one :class:`ShardedTable` of ``table`` over ``comm``: every front-end object that
    looks the table up or updates it shares it, and so the gradients it owes other ranks.

    >>> from recis.distributed.communicator import SingleProcess
    >>> table, comm = EmbeddingTable("item", dim=2), SingleProcess()
    >>> shard_of(table, comm) is shard_of(table, comm)
    True
    """
    shard = _SHARDS.get(table)
    if shard is None or shard.comm is not comm:
        shard = _SHARDS[table] = ShardedTable(table, comm)
    return shard


@dataclass
class LookupRequest:
    """Distinct ``ids`` (with ``tags``, seen ``counts`` times here) to look up in ``table``;
    ``with_counts`` asks for each id's occurrences over all ranks."""

    table: ShardedTable
    ids: np.ndarray
    tags: np.ndarray | None
    counts: np.ndarray
    with_counts: bool = False


@dataclass
class LookupReply:
    """Float32 ``values`` [U, dim] of a request's ids, their ``owner`` ranks and, when asked,
    their ``counts`` over all ranks."""

    ids: np.ndarray
    tags: np.ndarray
    owner: np.ndarray
    values: np.ndarray
    counts: np.ndarray | None


@dataclass
class _Outgoing:
    request: LookupRequest
    owner: np.ndarray
    order: np.ndarray
    send_counts: np.ndarray


def lookup(requests: Sequence[LookupRequest], train: bool) -> list[LookupReply]:
    """Look up every request on the owners of its ids (a collective: all ranks call it with
    requests for the same tables in the same order). Training lookups insert new ids."""
    if not requests:
        return []
    comm = requests[0].table.comm
    outgoing = [_outgoing(r, comm.world_size) for r in requests]
    names = [r.table.name for r in requests]
    recv_counts = comm.exchange_counts(
        np.stack([o.send_counts for o in outgoing], axis=1),
        f"all-to-all of lookup counts of tables {names}",
    )
    keys = [
        comm.all_to_all(_keys(o), o.send_counts, recv_counts[:, g], _what("ids", o.request))
        for g, o in enumerate(outgoing)
    ]
    replies = []
    for g, (o, pending) in enumerate(zip(outgoing, keys, strict=True)):
        served = _serve(o.request, pending.wait(), train)
        replies.append(
            comm.all_to_all(served, recv_counts[:, g], o.send_counts, _what("rows", o.request))
        )
    return [_reply(o, pending.wait()) for o, pending in zip(outgoing, replies, strict=True)]


def _what(payload: str, request: LookupRequest) -> str:
    return f"all-to-all of {payload} of table {request.table.name!r}"


def _outgoing(request: LookupRequest, world_size: int) -> _Outgoing:
    table = request.table.table
    owner = owners(request.ids, request.tags, table.children, world_size)
    order, send_counts = group_by_owner(owner, world_size)
    return _Outgoing(request, owner, order, send_counts)


def _keys(o: _Outgoing) -> np.ndarray:
    """[n, 3] int64 rows (id, tag, count) in owner order."""
    request = o.request
    tags = np.zeros(request.ids.size, np.int64) if request.tags is None else request.tags
    keys = np.empty((request.ids.size, 3), np.int64)
    keys[:, 0] = request.ids[o.order]
    keys[:, 1] = np.broadcast_to(tags, request.ids.shape)[o.order]
    keys[:, 2] = request.counts[o.order]
    return keys


def _serve(request: LookupRequest, keys: np.ndarray, train: bool) -> np.ndarray:
    """The owner's side: rows of the received ``keys`` (plus their total counts, as raw bits in
    one more float32 column, when the request wants them)."""
    shard = request.table
    ids, tags, counts = keys[:, 0], keys[:, 1], keys[:, 2]
    first, inverse = first_occurrences(ids, tags)
    total = np.bincount(inverse, weights=counts, minlength=first.size).astype(np.int64)
    found = shard.table.lookup(ids[first], tags[first], total, train)
    dim = found.values.shape[1]
    out = np.empty((ids.size, dim + request.with_counts), np.float32)
    out[:, :dim] = found.values[inverse]
    if request.with_counts:
        out[:, dim] = total[inverse].astype(np.int32).view(np.float32)
    return out


def _reply(o: _Outgoing, received: np.ndarray) -> LookupReply:
    request = o.request
    dim = request.table.table.dim
    values = np.empty((request.ids.size, dim), np.float32)
    values[o.order] = received[:, :dim]
    counts = None
    if request.with_counts:
        counts = np.empty(request.ids.size, np.int64)
        counts[o.order] = np.ascontiguousarray(received[:, dim]).view(np.int32)
    tags = np.zeros(request.ids.size, np.int64) if request.tags is None else request.tags
    tags = np.broadcast_to(np.asarray(tags, np.int64), request.ids.shape)
    return LookupReply(request.ids, tags, o.owner, values, counts)


def push_gradients(tables: Sequence[ShardedTable], average: bool = True) -> list[str]:
    """Send every table's recorded gradients to the owners of their rows and add them to the
    owners' gradient buffers, divided by the world size if ``average`` (a collective).

    Returns the names of the tables that had gradients on some rank: their optimizer step counts
    advance on every rank, even on one whose shard received none, as they would in one process.
    """
    if not tables:
        return []
    comm = tables[0].comm
    outgoing = [_gradient_rows(t, comm.world_size) for t in tables]
    counts = np.stack([counts for _, counts in outgoing], axis=1)
    totals = np.broadcast_to(counts.sum(axis=0), counts.shape)  # what this rank holds, to all
    received = comm.exchange_counts(
        np.concatenate([counts, totals], axis=1),
        f"all-to-all of gradient counts of tables {[t.name for t in tables]}",
    )
    recv_counts, held = received[:, : len(tables)], received[:, len(tables) :].sum(axis=0)
    pending = [
        comm.all_to_all(
            rows, counts, recv_counts[:, g], f"all-to-all of gradients of table {t.name!r}"
        )
        for g, (t, (rows, counts)) in enumerate(zip(tables, outgoing, strict=True))
    ]
    scale = 1.0 / comm.world_size if average else 1.0
    for table, exchange in zip(tables, pending, strict=True):
        _accumulate(table, exchange.wait(), scale)
    return [t.name for t, count in zip(tables, held, strict=True) if count]


def _gradient_rows(shard: ShardedTable, world_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The shard's pending gradients as [n, 4 + dim] float32 rows (id and tag as raw bits)
    grouped by owner, and the count per owner; clears the pending list."""
    dim = shard.table.dim
    pieces, shard.pending = shard.pending, []
    if not pieces:
        return np.empty((0, 4 + dim), np.float32), np.zeros(world_size, np.int64)
    ids, tags, owner, grads = (np.concatenate(part) for part in zip(*pieces, strict=True))
    order, counts = group_by_owner(owner, world_size)
    rows = np.empty((ids.size, 4 + dim), np.float32)
    rows[:, 0:2] = ids[order].view(np.float32).reshape(-1, 2)
    rows[:, 2:4] = tags[order].view(np.float32).reshape(-1, 2)
    rows[:, 4:] = grads[order]
    return rows, counts


def _accumulate(shard: ShardedTable, received: np.ndarray, scale: float) -> None:
    if not received.shape[0]:
        return
    ids = np.ascontiguousarray(received[:, 0:2]).view(np.int64).reshape(-1)
    tags = np.ascontiguousarray(received[:, 2:4]).view(np.int64).reshape(-1)
    grads = received[:, 4:]
    if scale != 1.0:
        grads = grads * np.float32(scale)
    rows = shard.table.find(ids, tags)
    shard.table.grads.add(rows, grads)

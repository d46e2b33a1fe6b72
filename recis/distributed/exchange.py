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

GPU tables exchange device (CuPy) arrays: ids, rows and gradients stay on the device and the
communicator moves them (NCCL); only the counts come to the host, once per exchange of all tables.
Padding entries of a GPU batch's distinct ids (count 0, see
:func:`~recis.core.dedupe.first_occurrences`) belong to no rank and are never sent. Every count
exchange also carries each table's device kind, so a rank whose tables live on another kind of
device than its peers' makes every rank raise :class:`~recis.distributed.CollectiveError`.

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

from recis.core.arrays import array_module
from recis.core.dedupe import first_occurrences, occurrence_counts
from recis.core.table import EmbeddingTable
from recis.distributed.communicator import CollectiveError, Communicator
from recis.distributed.sharding import group_by_owner, owners

DEVICE_KINDS = ("cpu", "cuda")  # a table's device kind travels as its index here


@dataclass
class ShardedTable:
    """This rank's shard of a physical table, and the gradients it owes other shards."""

    table: EmbeddingTable
    comm: Communicator
    pending: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = field(
        default_factory=list
    )

    @property
    def name(self) -> str:
        return self.table.name

    @property
    def xp(self):
        """The array module of the table's device (NumPy or CuPy)."""
        return self.table.xp

    def add_gradients(self, reply: LookupReply, grads: np.ndarray) -> None:
        """Record ``grads`` [U, dim] for the ids of ``reply``, to be pushed at the next step."""
        grads = self.xp.asarray(grads, dtype=np.float32)
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
    """Distinct ``ids`` (with ``tags``, seen ``counts`` times here; count 0 marks padding) to
    look up in ``table``, in its device's array module; ``with_counts`` asks for each id's
    occurrences over all ranks."""

    table: ShardedTable
    ids: np.ndarray
    tags: np.ndarray | None
    counts: np.ndarray
    with_counts: bool = False


@dataclass
class LookupReply:
    """Float32 ``values`` [U, dim] of a request's ids (zeros for padding), their ``owner``
    ranks (the world size for padding) and, when asked, their ``counts`` over all ranks."""

    ids: np.ndarray
    tags: np.ndarray
    owner: np.ndarray
    values: np.ndarray
    counts: np.ndarray | None


@dataclass
class _Outgoing:
    """A request's ids grouped by owner: ``order`` of positions, ``send_counts`` per rank
    (read to the host by the count exchange) and ``size``, how many are sent."""

    request: LookupRequest
    owner: np.ndarray
    order: np.ndarray
    send_counts: np.ndarray
    size: int = 0


def lookup(requests: Sequence[LookupRequest], train: bool) -> list[LookupReply]:
    """Look up every request on the owners of its ids (a collective: all ranks call it with
    requests for the same tables in the same order). Training lookups insert new ids."""
    if not requests:
        return []
    comm = requests[0].table.comm
    outgoing = [_outgoing(r, comm.world_size) for r in requests]
    shards = [r.table for r in requests]
    send = on_host([o.send_counts for o in outgoing])
    recv_counts = exchange_counts(comm, shards, send, "lookup counts")
    for o, counts in zip(outgoing, send, strict=True):
        o.send_counts, o.size = counts, int(counts.sum())
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


def on_host(arrays: list) -> list[np.ndarray]:
    """``arrays`` (NumPy or device vectors of one length) as NumPy arrays, the device ones read
    back in one copy (the one wait for the device of an exchange)."""
    out = list(arrays)
    on_device = [i for i, a in enumerate(arrays) if array_module(a) is not np]
    if on_device:
        xp = array_module(arrays[on_device[0]])
        host = xp.asnumpy(xp.stack([arrays[i] for i in on_device]))
        for i, row in zip(on_device, host, strict=True):
            out[i] = row
    return out


def exchange_counts(comm: Communicator, shards: Sequence[ShardedTable], counts, what: str):
    """``received[r, g]``, what rank ``r`` sends this one in table ``g``'s exchange, given
    ``counts[g][r]``, what this rank sends rank ``r`` (one vector per table, or several): one
    collective that also carries the
    tables' device kinds and raises :class:`CollectiveError` on every rank if they differ."""
    names = [s.name for s in shards]
    kinds = [DEVICE_KINDS.index(_kind(s)) for s in shards]
    sent = np.stack(list(counts), axis=1).astype(np.int64).reshape(comm.world_size, -1)
    width = sent.shape[1]
    kinds_sent = np.broadcast_to(np.array(kinds, np.int64), (comm.world_size, len(kinds)))
    received = comm.exchange_counts(
        np.concatenate([sent, kinds_sent], axis=1), f"all-to-all of {what} of tables {names}"
    )
    for g, shard in enumerate(shards):
        seen = received[:, width + g]
        if (seen != kinds[g]).any():
            where = ", ".join(f"rank {r}: {DEVICE_KINDS[k]}" for r, k in enumerate(seen))
            raise CollectiveError(
                f"all-to-all of {what} of table {shard.name!r} failed on rank {comm.rank}: the "
                f"ranks hold the table on different kinds of device ({where}); every rank must "
                f"place its tables on the same kind of device"
            )
    return received[:, :width]


def _kind(shard: ShardedTable) -> str:
    return str(shard.table.device).split(":")[0]


def _what(payload: str, request: LookupRequest) -> str:
    return f"all-to-all of {payload} of table {request.table.name!r}"


def _outgoing(request: LookupRequest, world_size: int) -> _Outgoing:
    table, xp = request.table.table, request.table.xp
    owner = owners(request.ids, request.tags, table.children, world_size)
    owner = xp.where(request.counts > 0, owner, world_size)  # padding goes to no rank
    order, counts = group_by_owner(owner, world_size + 1)
    return _Outgoing(request, owner, order, counts[:world_size])


def _tags(request: LookupRequest):
    xp = request.table.xp
    return xp.zeros(request.ids.size, np.int64) if request.tags is None else request.tags


def _keys(o: _Outgoing) -> np.ndarray:
    """[n, 3] int64 rows (id, tag, count) in owner order."""
    request, take = o.request, o.order[: o.size]
    keys = request.table.xp.empty((o.size, 3), np.int64)
    keys[:, 0] = request.ids[take]
    keys[:, 1] = _tags(request)[take]
    keys[:, 2] = request.counts[take]
    return keys


def _serve(request: LookupRequest, keys: np.ndarray, train: bool) -> np.ndarray:
    """The owner's side: rows of the received ``keys`` (plus their total counts, as raw bits in
    one more float32 column, when the request wants them)."""
    shard, xp = request.table, request.table.xp
    dim = shard.table.dim
    out = xp.empty((keys.shape[0], dim + request.with_counts), np.float32)
    if not keys.shape[0]:
        return out
    ids, tags, counts = keys[:, 0], keys[:, 1], keys[:, 2]
    on_device = xp is not np
    first, inverse = first_occurrences(ids, tags, shard.table.sync_free, tags_checked=on_device)
    total = occurrence_counts(inverse, first.size, weights=counts)
    found = shard.table.lookup(ids[first], tags[first], total, train, tags_checked=on_device)
    out[:, :dim] = found.values[inverse]
    if request.with_counts:
        out[:, dim] = total[inverse].astype(np.int32).view(np.float32)
    return out


def _reply(o: _Outgoing, received: np.ndarray) -> LookupReply:
    request, xp = o.request, o.request.table.xp
    dim, take = request.table.table.dim, o.order[: o.size]
    values = xp.zeros((request.ids.size, dim), np.float32)
    values[take] = received[:, :dim]
    counts = None
    if request.with_counts:
        counts = xp.zeros(request.ids.size, np.int64)
        counts[take] = xp.ascontiguousarray(received[:, dim]).view(np.int32)
    tags = xp.broadcast_to(xp.asarray(_tags(request), dtype=np.int64), request.ids.shape)
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
    grouped = [_grouped_gradients(t, comm.world_size) for t in tables]
    counts = on_host([counts for _, counts in grouped])
    totals = [np.broadcast_to(c.sum(), c.shape) for c in counts]  # what this rank holds, to all
    received = exchange_counts(comm, tables, counts + totals, "gradient counts")
    recv_counts, held = received[:, : len(tables)], received[:, len(tables) :].sum(axis=0)
    pending = []
    for g, (table, (group, _), sent) in enumerate(zip(tables, grouped, counts, strict=True)):
        rows = _gradient_rows(table, group, int(sent.sum()))
        what = f"all-to-all of gradients of table {table.name!r}"
        pending.append(comm.all_to_all(rows, sent, recv_counts[:, g], what))
    scale = 1.0 / comm.world_size if average else 1.0
    for table, exchange in zip(tables, pending, strict=True):
        _accumulate(table, exchange.wait(), scale)
    return [t.name for t, count in zip(tables, held, strict=True) if count]


def _grouped_gradients(shard: ShardedTable, world_size: int):
    """The shard's pending (ids, tags, grads, order by owner) and the count per owner; clears
    the pending list."""
    pieces, shard.pending = shard.pending, []
    if not pieces:
        return None, shard.xp.zeros(world_size, np.int64)
    ids, tags, owner, grads = (shard.xp.concatenate(part) for part in zip(*pieces, strict=True))
    order, counts = group_by_owner(owner, world_size + 1)  # padding: owner world_size
    return (ids, tags, grads, order), counts[:world_size]


def _gradient_rows(shard: ShardedTable, grouped, size: int) -> np.ndarray:
    """The first ``size`` pending gradients in owner order as [size, 4 + dim] float32 rows
    (id and tag as raw bits)."""
    rows = shard.xp.empty((size, 4 + shard.table.dim), np.float32)
    if grouped is None:
        return rows
    ids, tags, grads, order = grouped
    take = order[:size]
    rows[:, 0:2] = ids[take].view(np.float32).reshape(-1, 2)
    rows[:, 2:4] = tags[take].view(np.float32).reshape(-1, 2)
    rows[:, 4:] = grads[take]
    return rows


def _accumulate(shard: ShardedTable, received: np.ndarray, scale: float) -> None:
    if not received.shape[0]:
        return
    xp = shard.xp
    ids = xp.ascontiguousarray(received[:, 0:2]).view(np.int64).reshape(-1)
    tags = xp.ascontiguousarray(received[:, 2:4]).view(np.int64).reshape(-1)
    grads = received[:, 4:]
    if scale != 1.0:
        grads = grads * np.float32(scale)
    rows = shard.table.find(ids, tags)
    shard.table.grads.add(rows, grads)

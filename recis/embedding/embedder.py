"""``Embedder``: growable hash-table embeddings of many features, for any dense framework.

The one embedding pipeline of RecIS; the torch and JAX front ends are thin adapters over it.
Features whose options agree on storage share one physical engine table; each ``shared_name``
is a logical table inside it. Sparse work stays outside ``jit`` and autograd:

1. :meth:`Embedder.lookup` deduplicates the ids of each table's features, looks them up once
   (inserting new ids in training), combines each feature's rows with its combiner and returns
   the activations as engine arrays (NumPy, or CuPy for GPU tables), plus a
   :class:`LookupContext`;
2. the dense framework computes gradients w.r.t. those activations;
3. :meth:`Embedder.apply_gradients` runs the combiners' backward in the engine and adds the row
   gradients to the tables' buffers, which a sparse optimizer
   (:class:`~recis.embedding.sparse_optimizer.SparseOptimizerCore`) then applies.

With a :class:`~recis.distributed.communicator.Communicator` of several ranks (by default the
world of :func:`recis.distributed.world.default_communicator`), each rank's tables hold the rows
it owns (:mod:`recis.distributed.sharding`). A lookup is then a collective: the distinct ids of
all tables go to their owners in one exchange (:func:`recis.distributed.exchange.lookup`), and
the row gradients are recorded for the owners, to whom the sparse optimizer's step sends them.

>>> import numpy as np
>>> from recis.embedding.option import EmbeddingOption
>>> embedder = Embedder({
...     "user": EmbeddingOption(embedding_dim=4, shared_name="user"),
...     "item": EmbeddingOption(embedding_dim=4, shared_name="item", combiner="mean"),
... })
>>> batch = {"user": np.array([[1], [2]]), "item": np.array([[5, 6], [5, 5]])}
>>> out, context = embedder.lookup(batch)
>>> sorted(out), out["item"].shape, list(embedder.tables)
(['item', 'user'], (2, 4), ['item+1'])
>>> embedder.apply_gradients(context, {f: np.ones(a.shape, np.float32) for f, a in out.items()})
>>> rows, grads = embedder.tables["item+1"].grads.summed(1)
>>> grads[:, 0].tolist()  # item 5: 1/2 + 2/2, item 6: 1/2, users 1 and 2: 1 each
[1.5, 0.5, 1.0, 1.0]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial

import numpy as np

from recis.core.arrays import array_module
from recis.core.dedupe import first_occurrences, occurrence_counts
from recis.core.segment import segment_reduce, segment_reduce_backward
from recis.core.table import EmbeddingTable
from recis.core.threads import beside_framework
from recis.distributed import exchange
from recis.distributed.communicator import Communicator
from recis.distributed.exchange import LookupReply, LookupRequest, ShardedTable, shard_of
from recis.distributed.world import default_communicator
from recis.embedding.layout import RunLayout, feature_request, layout_run, pad_request
from recis.embedding.plan import Request, TableGroup, plan_tables

TableFactory = Callable[[object, str, list], EmbeddingTable]


@dataclass
class DistinctKeys:
    """A physical table's distinct ``ids`` and ``tags`` in a batch, seen ``counts`` times; each
    looked-up id's position among them is ``index``."""

    ids: np.ndarray
    tags: np.ndarray | None
    counts: np.ndarray
    index: np.ndarray


def distinct_keys(ids, tags=None, padded: bool = False, tags_checked=False) -> DistinctKeys:
    """The distinct (id, tag) pairs of ``ids`` with their counts and each id's index, padded
    to one entry per id (with counts 0) for tables whose steps never wait for the GPU.
    ``tags_checked``: see :func:`recis.core.dedupe.tag_vector`.

    >>> keys = distinct_keys(np.array([7, 9, 7]))
    >>> keys.ids.tolist(), keys.counts.tolist(), keys.index.tolist()
    ([7, 9], [2, 1], [0, 1, 0])
    """
    first, index = first_occurrences(ids, tags, padded, tags_checked=tags_checked)
    counts = occurrence_counts(index, first.size)
    distinct_tags = tags if tags is None or np.ndim(tags) == 0 else tags[first]
    return DistinctKeys(ids[first], distinct_tags, counts, index)


@dataclass
class FoundRows:
    """Float32 ``values`` of a table's distinct ids, where their gradients go (``record``), and
    ``grad_scale``, each row's gradient factor (None unless gradients are averaged per id)."""

    values: np.ndarray
    record: Callable[[np.ndarray], None]
    grad_scale: np.ndarray | None


def find_rows(
    tables: list[EmbeddingTable],
    keys: list[DistinctKeys],
    train: bool,
    by_id: list[bool],
    comm: Communicator | None,
) -> list[FoundRows]:
    """Each table's rows of its distinct ids: in this process, or (``comm`` given) on their
    owner ranks, all tables in one exchange. ``by_id[i]`` asks for per-id gradient averaging.
    The lookup's counts are then each table's ``last_stats`` (its owner's part, if sharded)."""
    if comm is None:
        found = zip(tables, keys, by_id, strict=True)
        return [_find_here(table, k, train, b) for table, k, b in found]
    shards = [shard_of(table, comm) for table in tables]
    requests = [
        LookupRequest(shard, k.ids, _tag_array(k.tags, k.ids), k.counts, train and b)
        for shard, k, b in zip(shards, keys, by_id, strict=True)
    ]
    replies = exchange.lookup(requests, train)
    return [_sharded_found(s, r) for s, r in zip(shards, replies, strict=True)]


def _fused_lookup(
    table, group: TableGroup, requests, by_id: bool
) -> tuple[DistinctKeys, FoundRows] | None:
    """The training lookup of a table's ids with their deduplication fused in: on the GPU in a
    few kernels (:func:`recis.core.cuda.lookup.train_lookup`), distinct ids indexed by position;
    on the CPU in one probe per id (:meth:`EmbeddingTable.lookup_batch`). Returns the distinct
    keys and the rows found, or None where it does not apply."""
    if table.xp is np:
        return _fused_cpu_lookup(table, group, requests, by_id)
    if not table.sync_free or table.changes is not None:
        return None  # a table tracking its changes stamps its new rows as it initialises them
    from recis.core.cuda.lookup import train_lookup

    ids, tags = group.lookup_keys(requests)
    found = train_lookup(table, ids, tags)
    if found is None:
        return None
    keys = DistinctKeys(ids, tags, found.counts, found.index)
    scale = None
    if by_id:
        scale = 1.0 / table.xp.asarray(found.counts, np.float32).clip(1)  # padding: count 0
    record = partial(table.grads.add, found.rows, distinct=True)
    return keys, FoundRows(found.values, record, scale)


def _fused_cpu_lookup(table, group: TableGroup, requests, by_id: bool):
    ids, tags = group.lookup_keys(requests)
    found = table.lookup_batch(ids, tags, tags_checked=True)  # the planner's tags lie in range
    if found is None:
        return None
    distinct_tags = tags if tags is None or np.ndim(tags) == 0 else tags[found.positions]
    keys = DistinctKeys(ids[found.positions], distinct_tags, found.counts, found.index)
    scale = 1.0 / found.counts.astype(np.float32) if by_id else None
    record = partial(table.grads.add, found.rows, distinct=True)
    return keys, FoundRows(found.values, record, scale)


def _find_here(table, keys: DistinctKeys, train: bool, by_id: bool) -> FoundRows:
    found = table.lookup(keys.ids, keys.tags, keys.counts, train, tags_checked=True)  # deduped
    scale = None
    if by_id:
        scale = 1.0 / table.xp.asarray(keys.counts, np.float32).clip(1)  # padding: count 0
    return FoundRows(found.values, partial(table.grads.add, found.rows, distinct=True), scale)


def _sharded_found(shard: ShardedTable, reply: LookupReply) -> FoundRows:
    scale = None if reply.counts is None else 1.0 / reply.counts.astype(np.float32).clip(1)
    return FoundRows(reply.values, partial(shard.add_gradients, reply), scale)


def _tag_array(tags, ids: np.ndarray) -> np.ndarray | None:
    """One tag per id, in the ids' array module (a scalar tag is filled on their device)."""
    if tags is None:
        return None
    if np.ndim(tags) == 0:
        return array_module(ids).full(ids.shape, int(tags), np.int64)
    return tags


@dataclass
class _Run:
    """One combine call: its layout, the ids' rows among the table's distinct ids, its option."""

    layout: RunLayout
    index: np.ndarray
    option: object

    @property
    def segment_shape(self) -> tuple[int, ...]:
        """The shape of one segment of the combined output: ``(dim,)`` or ``(tile_len, dim)``."""
        option = self.option
        if option.tile_len is not None:
            return (option.tile_len, option.embedding_dim)
        return (option.embedding_dim,)

    def backward(self, grads: Mapping, num_rows: int) -> np.ndarray:
        """Gradient w.r.t. the distinct rows, from the gradients w.r.t. the activations."""
        option, merged = self.option, self.layout.merged
        return segment_reduce_backward(
            self.layout.join(grads, self.segment_shape),
            self.index,
            merged.offsets,
            merged.weights,
            option.combiner,
            num_rows=num_rows,
            tile_len=option.tile_len,
        )


@dataclass
class _TableLookup:
    """What one physical table's lookup needs for the backward pass."""

    found: FoundRows
    num_rows: int
    runs: list[_Run]


@dataclass
class LookupContext:
    """What :meth:`Embedder.apply_gradients` needs from a :meth:`Embedder.lookup`.

    ``num_samples`` is the batch size of the input, ``batch_size`` that of the activations
    (padded with zeros).
    """

    lookups: list[_TableLookup]
    num_samples: int
    batch_size: int
    train: bool
    applied: bool = False

    def joined_runs(self) -> list[tuple[RunLayout, tuple[int, ...]]]:
        """The layouts of the combine calls of several features, with their segment shapes:
        a front end that hands back each such call's gradients as views of one buffer laid
        out like the call's output (see :meth:`RunLayout.join`) spares the join a copy."""
        return [
            (run.layout, run.segment_shape)
            for lookup in self.lookups
            for run in lookup.runs
            if len(run.layout.slices) > 1
        ]


class Embedder:
    """Embeds the features named in ``options`` (see the module docstring).

    Args:
        options: each feature's option (a front end's ``EmbeddingOption``).
        communicator: the ranks to shard the tables over (default: the world of
            :func:`~recis.distributed.world.default_communicator`, read at each lookup); one of
            a single rank means no sharding.
        make_table: ``make_table(option, name, children)`` builds each physical table (default:
            ``option.make_table(name, children)``), e.g. to wrap it in a framework module.
    """

    def __init__(
        self,
        options: Mapping,
        communicator: Communicator | None = None,
        make_table: TableFactory | None = None,
    ) -> None:
        self.options = dict(options)
        self._groups = plan_tables(self.options)
        make_table = make_table or (
            lambda option, name, children: option.make_table(name, children)
        )
        self.tables: dict[str, EmbeddingTable] = {}
        for group in self._groups:
            trained = [f for f in group.features if self.options[f].trainable]
            option = self.options[(trained or group.features)[0]]
            self.tables[group.name] = make_table(option, group.name, group.children)
        self._communicator = communicator

    @property
    def features(self) -> list[str]:
        return list(self.options)

    @property
    def communicator(self) -> Communicator | None:
        """The ranks the tables are sharded over; None in one process."""
        comm = self._communicator if self._communicator is not None else default_communicator()
        return comm if comm is not None and comm.world_size > 1 else None

    @property
    def shards(self) -> list[ShardedTable] | None:
        """This rank's shards of the tables (in the order of :attr:`tables`) when they are
        sharded over ranks, else None."""
        comm = self.communicator
        if comm is None:
            return None
        return [shard_of(table, comm) for table in self.tables.values()]

    def __repr__(self) -> str:
        return f"Embedder(features={self.features}, tables={list(self.tables.values())})"

    @beside_framework
    def lookup(
        self, batch: Mapping, *, train: bool = True, batch_size: int | None = None
    ) -> tuple[dict, LookupContext]:
        """Activations of every configured feature of ``batch`` (engine arrays) and the context
        of the lookup.

        Inputs are dense integer ids ``[B, ..., k]`` (any array with ``__dlpack__``) or
        :class:`~recis.core.ragged.Ragged`. Training lookups insert the new ids that admission
        accepts. ``batch_size`` pads the batch dimension with empty samples (zero activations)
        so that jitted code sees fixed shapes. Other entries of ``batch`` are ignored.
        """
        requests = self._requests(batch)
        num_samples = _common_batch_size(requests)
        batch_size = num_samples if batch_size is None else batch_size
        requests = {f: _pad(f, r, batch_size) for f, r in requests.items()}
        keys, found = self._find(requests, train)
        activations: dict = {}
        lookups = [
            self._combine(group, requests, group_keys, group_found, activations)
            for group, group_keys, group_found in zip(self._groups, keys, found, strict=True)
        ]
        return activations, LookupContext(lookups, num_samples, batch_size, train)

    def _find(self, requests, train: bool) -> tuple[list[DistinctKeys], list[FoundRows]]:
        """Each table's distinct keys and rows: GPU tables of a training lookup in one process
        through the fused lookup where it applies, the others through :func:`find_rows`."""
        comm = self.communicator
        tables = list(self.tables.values())
        by_id = [self.options[g.features[0]].grad_reduce_by == "id" for g in self._groups]
        pairs = [
            _fused_lookup(table, group, requests, b) if train and comm is None else None
            for group, table, b in zip(self._groups, tables, by_id, strict=True)
        ]
        rest = [k for k, pair in enumerate(pairs) if pair is None]
        keys = [  # the planner's tags lie in range
            distinct_keys(*self._groups[k].lookup_keys(requests), tables[k].sync_free, True)
            for k in rest
        ]
        found = find_rows([tables[k] for k in rest], keys, train, [by_id[k] for k in rest], comm)
        for k, pair in zip(rest, zip(keys, found, strict=True), strict=True):
            pairs[k] = pair
        return [pair[0] for pair in pairs], [pair[1] for pair in pairs]

    def _requests(self, batch: Mapping) -> dict[str, Request]:
        requests = {}
        for feature, option in self.options.items():
            if feature not in batch:
                raise KeyError(f"Embedder: the batch has no feature {feature!r}")
            requests[feature] = feature_request(
                feature, batch[feature], option.use_weight, option.padding_id
            )
        return requests

    def _combine(
        self, group: TableGroup, requests, keys: DistinctKeys, found: FoundRows, out: dict
    ) -> _TableLookup:
        """Put the activations of the group's features in ``out``; return the group's context."""
        runs, start = [], 0
        for features in group.runs(self.options):
            option = self.options[features[0]]
            layout = layout_run(features, requests, option.embedding_dim, option.tile_len)
            stop = start + layout.num_ids
            run = _Run(layout, keys.index[start:stop], option)
            merged = layout.merged
            combined = segment_reduce(
                found.values, run.index, merged.offsets, merged.weights, option.combiner,
                option.tile_len,
            )  # fmt: skip
            out.update(layout.split(combined))
            runs.append(run)
            start = stop
        return _TableLookup(found, keys.ids.size, runs)

    @beside_framework
    def apply_gradients(
        self, context: LookupContext, grads: Mapping, *, allow_missing: bool = False
    ) -> None:
        """Add the gradients w.r.t. the activations of ``context``'s lookup to the tables.

        ``grads`` maps each trainable feature to an array shaped like its activation (any array
        with ``__dlpack__``); a missing one is an error. With ``allow_missing`` (for autograd,
        which gives no gradient to an output no loss depends on), a table none of whose
        features has a gradient gets none, and a feature missing beside others of its table
        counts as zeros. The tables' sparse optimizer applies the gradients at its next step.
        """
        if not context.train:
            raise ValueError("Embedder.apply_gradients: the lookup was not a training lookup")
        if context.applied:
            raise ValueError("Embedder.apply_gradients: this lookup's gradients were applied")
        for table_lookup in context.lookups:
            _apply_table_gradients(table_lookup, grads, allow_missing)
        context.applied = True

    def lookup_stats(self) -> dict[str, dict[str, int]]:
        """Per physical table: ids new, admitted, refused and evicted by the last lookup."""
        return {name: table.last_stats.as_dict() for name, table in self.tables.items()}


def _option_table(option, name: str, children: list[str]) -> EmbeddingTable:
    return option.make_table(name, children)


def _apply_table_gradients(lookup: _TableLookup, grads: Mapping, allow_missing: bool) -> None:
    runs = [run for run in lookup.runs if run.option.trainable]
    if not allow_missing:
        for feature in (f for run in runs for f in run.layout.slices if f not in grads):
            raise KeyError(f"no gradient for feature {feature!r}")
    runs = [run for run in runs if any(f in grads for f in run.layout.slices)]
    if not runs:
        return
    grad_rows = None
    for run in runs:
        part = run.backward(grads, lookup.num_rows)
        if grad_rows is None:
            grad_rows = part
        else:
            grad_rows += part
    if lookup.found.grad_scale is not None:
        grad_rows *= lookup.found.grad_scale[:, None]
    lookup.found.record(grad_rows)


def _common_batch_size(requests: Mapping[str, Request]) -> int:
    sizes = {f: r.prefix[0] for f, r in requests.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"features have different batch sizes: {sizes}")
    return next(iter(sizes.values()), 0)


def _pad(feature: str, request: Request, batch_size: int) -> Request:
    try:
        return pad_request(request, batch_size)
    except ValueError as error:
        raise ValueError(f"feature {feature!r}: {error}") from None

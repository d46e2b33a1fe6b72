"""``Embedder``: growable hash-table embeddings of many features, for JAX dense models.

The functional form of the torch backend's ``EmbeddingEngine``. Features whose
:class:`~recis.backends.jax.options.EmbeddingOption` s agree on storage share one physical
engine table; each ``shared_name`` is a logical table inside it. Sparse work stays outside
``jit``:

1. :meth:`Embedder.lookup` deduplicates the ids of each table's features, looks them up once
   (inserting new ids in training), combines each feature's rows with its combiner and returns the
   activations as ``jax.Array`` s that share the engine's memory, plus a :class:`LookupContext`;
2. a jitted dense step computes gradients w.r.t. those activations;
3. :meth:`Embedder.apply_gradients` runs the combiners' backward in the engine and adds the row
   gradients to the tables' buffers, which a sparse optimizer then applies.

With a :class:`~recis.distributed.communicator.Communicator` of several ranks (by default that of
``torch.distributed``'s world: JAX programs are launched with ``torchrun`` too), each rank's
tables hold the rows it owns (:mod:`recis.distributed.sharding`). A lookup is then a collective:
the distinct ids of all tables go to their owners in one exchange
(:func:`recis.distributed.exchange.lookup`), and the row gradients are recorded for the owners,
to whom the sparse optimizer's step sends them.

Tables of ``EmbeddingOption(device="cuda")`` live on the GPU: ids (JAX GPU arrays or CuPy
arrays) enter the engine over DLPack, the activations leave as JAX GPU arrays sharing the
engine's memory, and the gradients return the same way. The DLPack stream protocol orders the
engine's kernels (on CuPy's current stream) with JAX's work.

>>> import numpy as np
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

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial

import jax
import numpy as np

from recis.backends.jax.options import EmbeddingOption
from recis.core.dedupe import first_occurrences, occurrence_counts
from recis.core.policies import LookupStats
from recis.core.segment import segment_reduce, segment_reduce_backward
from recis.core.table import EmbeddingTable
from recis.core.threads import beside_framework
from recis.distributed import exchange
from recis.distributed.communicator import Communicator
from recis.distributed.exchange import LookupReply, LookupRequest, ShardedTable
from recis.embedding.layout import RunLayout, feature_request, layout_run, pad_request
from recis.embedding.plan import Request, TableGroup, plan_tables


@dataclass
class _Run:
    """One combine call: its layout, the ids' rows among the table's distinct ids, its option."""

    layout: RunLayout
    index: np.ndarray
    option: EmbeddingOption

    def backward(self, grads: Mapping, num_rows: int) -> np.ndarray:
        """Gradient w.r.t. the distinct rows, from the gradients w.r.t. the activations."""
        option, merged = self.option, self.layout.merged
        segment = (option.embedding_dim,)
        if option.tile_len is not None:
            segment = (option.tile_len, option.embedding_dim)
        return segment_reduce_backward(
            self.layout.join(grads, segment),
            self.index,
            merged.offsets,
            merged.weights,
            option.combiner,
            num_rows=num_rows,
            tile_len=option.tile_len,
        )


@dataclass
class _Keys:
    """A physical table's distinct ``ids`` and ``tags`` in a batch, seen ``counts`` times; each
    looked-up id's position among them is ``index``."""

    ids: np.ndarray
    tags: np.ndarray
    counts: np.ndarray
    index: np.ndarray


@dataclass
class _Found:
    """Float32 ``values`` of a table's distinct ids, where their gradients go (``record``), and
    the ids' occurrences over all ranks (None unless gradients are averaged per id)."""

    values: np.ndarray
    record: Callable[[np.ndarray], None]
    counts: np.ndarray | None


@dataclass
class _TableLookup:
    """What one physical table's lookup needs for the backward pass: ``record`` takes the
    gradient of each distinct row."""

    record: Callable[[np.ndarray], None]
    num_rows: int
    grad_scale: np.ndarray | None
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


class Embedder:
    """Embeds the features named in ``options`` (see the module docstring).

    Args:
        options: each feature's :class:`EmbeddingOption`.
        communicator: the ranks to shard the tables over (default: :func:`default_communicator`,
            read at each lookup); one of a single rank means no sharding.
    """

    def __init__(
        self, options: Mapping[str, EmbeddingOption], communicator: Communicator | None = None
    ) -> None:
        for feature, option in options.items():
            if not isinstance(option, EmbeddingOption):
                raise TypeError(
                    f"feature {feature!r}: expected a recis.backends.jax EmbeddingOption, "
                    f"got {type(option).__name__}"
                )
        self.options = dict(options)
        self._groups = plan_tables(self.options)
        self.tables: dict[str, EmbeddingTable] = {}
        for group in self._groups:
            option = self.options[group.features[0]]
            self.tables[group.name] = option.make_table(group.name, group.children)
        self.last_stats = {name: LookupStats() for name in self.tables}
        self._communicator = communicator
        self._shards: list[ShardedTable] = []

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
        if not self._shards or self._shards[0].comm is not comm:
            self._shards = [ShardedTable(table, comm) for table in self.tables.values()]
        return self._shards

    def __repr__(self) -> str:
        return f"Embedder(features={self.features}, tables={list(self.tables.values())})"

    @beside_framework
    def lookup(
        self, batch: Mapping, *, train: bool = True, batch_size: int | None = None
    ) -> tuple[dict[str, jax.Array], LookupContext]:
        """Activations of every configured feature of ``batch`` and the context of the lookup.

        Training lookups insert the new ids that admission accepts. ``batch_size`` pads the
        batch dimension with empty samples (zero activations) so that jitted code sees fixed
        shapes. Other entries of ``batch`` are ignored.
        """
        requests = self._requests(batch)
        num_samples = _common_batch_size(requests)
        batch_size = num_samples if batch_size is None else batch_size
        requests = {f: _pad(f, r, batch_size) for f, r in requests.items()}
        unsharded = self.shards is None
        keys = [
            _group_keys(group, requests, unsharded and table.sync_free)
            for group, table in zip(self._groups, self.tables.values(), strict=True)
        ]
        found = self._find(keys, train)
        activations: dict[str, jax.Array] = {}
        lookups = [
            self._combine(group, requests, group_keys, group_found, activations)
            for group, group_keys, group_found in zip(self._groups, keys, found, strict=True)
        ]
        return activations, LookupContext(lookups, num_samples, batch_size, train)

    def _requests(self, batch: Mapping) -> dict[str, Request]:
        requests = {}
        for feature, option in self.options.items():
            if feature not in batch:
                raise KeyError(f"Embedder: the batch has no feature {feature!r}")
            requests[feature] = feature_request(feature, batch[feature], option.use_weight)
        return requests

    def _find(self, keys: list[_Keys], train: bool) -> list[_Found]:
        """Each table's values of its distinct ids: in this process, or on their owners."""
        shards = self.shards
        if shards is None:
            tables = self.tables.values()
            return [self._find_here(t, k, train) for t, k in zip(tables, keys, strict=True)]
        requests = [
            LookupRequest(shard, k.ids, k.tags, k.counts, train and self._by_id(group))
            for shard, group, k in zip(shards, self._groups, keys, strict=True)
        ]
        replies = exchange.lookup(requests, train)
        for shard in shards:
            self.last_stats[shard.name] = shard.last_stats
        return [_sharded_found(shard, reply) for shard, reply in zip(shards, replies, strict=True)]

    def _find_here(self, table: EmbeddingTable, keys: _Keys, train: bool) -> _Found:
        found = table.lookup(keys.ids, keys.tags, keys.counts, train)
        self.last_stats[table.name] = found.stats
        return _Found(
            found.values, partial(table.grads.add, found.rows, distinct=True), keys.counts
        )

    def _by_id(self, group: TableGroup) -> bool:
        """Whether the gradients of the group's ids are averaged over their occurrences."""
        return self.options[group.features[0]].grad_reduce_by == "id"

    def _combine(
        self, group: TableGroup, requests, keys: _Keys, found: _Found, out: dict
    ) -> _TableLookup:
        """Put the activations of the group's features in ``out``; return the group's context."""
        runs, start = [], 0
        for features in group.runs(self.options):
            option = self.options[features[0]]
            layout = layout_run(features, requests, option.embedding_dim, option.tile_len)
            stop = start + layout.merged.ids.size
            run = _Run(layout, keys.index[start:stop], option)
            merged = layout.merged
            combined = segment_reduce(
                found.values, run.index, merged.offsets, merged.weights, option.combiner,
                option.tile_len,
            )  # fmt: skip
            out.update({f: jax.dlpack.from_dlpack(v) for f, v in layout.split(combined).items()})
            runs.append(run)
            start = stop
        by_id = self._by_id(group) and found.counts is not None
        scale = 1.0 / found.counts.astype(np.float32).clip(1) if by_id else None  # padding: 0
        return _TableLookup(found.record, keys.ids.size, scale, runs)

    @beside_framework
    def apply_gradients(self, context: LookupContext, grads: Mapping) -> None:
        """Add the gradients w.r.t. the activations of ``context``'s lookup to the tables.

        ``grads`` maps each trainable feature to an array shaped like its activation (JAX or
        NumPy). The tables' sparse optimizer applies them at its next step.
        """
        if not context.train:
            raise ValueError("Embedder.apply_gradients: the lookup was not a training lookup")
        if context.applied:
            raise ValueError("Embedder.apply_gradients: this lookup's gradients were applied")
        for table_lookup in context.lookups:
            _apply_table_gradients(table_lookup, grads)
        context.applied = True

    def lookup_stats(self) -> dict[str, dict[str, int]]:
        """Per physical table: ids new, admitted, refused and evicted by the last lookup."""
        return {name: stats.as_dict() for name, stats in self.last_stats.items()}


def default_communicator() -> Communicator | None:
    """The communicator of ``torch.distributed``'s world when it is initialised with several
    ranks, else None. Torch is not imported: a process that has not imported it has no process
    group.

    >>> default_communicator() is None
    True
    """
    if "torch.distributed" not in sys.modules:
        return None
    from recis.backends.torch.communicator import default_communicator as world_communicator

    return world_communicator()


def _group_keys(group: TableGroup, requests: Mapping[str, Request], padded: bool) -> _Keys:
    """The group's distinct (ids, tags), padded for a table whose steps never wait for the GPU
    (:attr:`~recis.core.table.EmbeddingTable.sync_free`), their counts and each id's index."""
    ids, tags = group.lookup_keys(requests)
    first, index = first_occurrences(ids, tags, padded)
    counts = occurrence_counts(index, first.size)
    return _Keys(ids[first], tags[first], counts, index)


def _sharded_found(shard: ShardedTable, reply: LookupReply) -> _Found:
    return _Found(reply.values, partial(shard.add_gradients, reply), reply.counts)


def _apply_table_gradients(lookup: _TableLookup, grads: Mapping) -> None:
    grad_rows = None
    for run in lookup.runs:
        if not run.option.trainable:
            continue
        part = run.backward(grads, lookup.num_rows)
        if grad_rows is None:
            grad_rows = part
        else:
            grad_rows += part
    if grad_rows is None:
        return
    if lookup.grad_scale is not None:
        grad_rows *= lookup.grad_scale[:, None]
    lookup.record(grad_rows)


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

"""``EmbeddingEngine``: embeds many features with one lookup per merged table (RecIS API).

Features whose :class:`EmbeddingOption` s agree on storage (dim, dtype, initializer, hooks, …)
share one physical :class:`HashTable`; each ``shared_name`` is a logical table inside it, keyed by
(id, tag) so ids stay whole. A forward pass deduplicates the ids of all features of a table, looks
them up once, then combines each feature's rows with its own combiner — features with the same
combiner in one call. Tables of ``EmbeddingOption(device="cuda")`` take CUDA tensors and keep the
whole lookup on the GPU.

>>> import torch
>>> engine = EmbeddingEngine({
...     "user": EmbeddingOption(embedding_dim=8, shared_name="user"),
...     "item": EmbeddingOption(embedding_dim=8, shared_name="item", combiner="mean"),
... })
>>> out = engine({"user": torch.tensor([[1], [2]]), "item": torch.tensor([[5, 6], [5, 5]]),
...               "label": torch.tensor([1.0, 0.0])})
>>> sorted(out), out["item"].shape, len(engine.tables)
(['item', 'label', 'user'], torch.Size([2, 8]), 1)
"""

from __future__ import annotations

import torch
from torch import nn

from recis.backends.torch.bridge import beside_torch
from recis.backends.torch.embedding import (
    EmbeddingOption,
    combine_segments,
    make_request,
    shape_output,
)
from recis.backends.torch.hashtable import lookup_tables
from recis.backends.torch.ragged import RaggedTensor
from recis.core.dedupe import first_occurrences, occurrence_counts
from recis.embedding.plan import TableGroup, merge_requests, plan_tables


class EmbeddingEngine(nn.Module):
    """Embeds the features named in ``emb_options`` (see the module docstring)."""

    def __init__(self, emb_options: dict[str, EmbeddingOption]) -> None:
        super().__init__()
        self.options = dict(emb_options)
        self._groups = plan_tables(self.options)
        self.tables = nn.ModuleDict()
        for group in self._groups:
            table = self.options[group.features[0]].make_table(group.name, group.children)
            self.tables[str(len(self.tables))] = table

    @beside_torch
    def forward(self, batch: dict) -> dict:
        """Embeddings of the configured features; other entries pass through (ragged → dense).

        Under torch.distributed with several ranks this is a collective (the tables are sharded
        over the ranks): every rank calls it once per step.
        """
        tables = list(self.tables.values())
        prepared = [
            self._prepare_group(group, batch, table.sync_free)
            for group, table in zip(self._groups, tables, strict=True)
        ]
        keys = [(ids, tags, counts) for _, ids, tags, counts, _ in prepared]
        values = lookup_tables(tables, keys)
        out = {}
        for (requests, *_, index), group, rows in zip(prepared, self._groups, values, strict=True):
            out.update(self._combine(group, requests, rows, index))
        for key, value in batch.items():
            if key not in self.options:
                out[key] = value.to_dense() if isinstance(value, RaggedTensor) else value
        return out

    def _prepare_group(self, group: TableGroup, batch: dict, padded: bool) -> tuple:
        """The group's requests, its distinct (ids, tags) with their counts, and each id's
        position among them; ``padded`` for a table whose lookups never wait for the GPU (the
        distinct ids are then padded to one per id, see ``HashTable.sync_free``)."""
        requests = {}
        for feature in group.features:
            if feature not in batch:
                raise KeyError(f"EmbeddingEngine: the batch has no feature {feature!r}")
            option = self.options[feature]
            requests[feature] = make_request(
                feature, batch[feature], use_weight=option.use_weight, device=option.device
            )
        ids, tags = group.lookup_keys(requests)
        first, index = first_occurrences(ids, tags, padded)
        counts = occurrence_counts(index, first.size)
        return requests, ids[first], tags[first], counts, index

    def _combine(self, group: TableGroup, requests, values, index) -> dict[str, torch.Tensor]:
        """One combine call per run of features with equal runtime options."""
        out, start = {}, 0
        for run in group.runs(self.options):
            merged = merge_requests([requests[f] for f in run])
            stop = start + merged.ids.size
            combined = combine_segments(values, index[start:stop], merged, self.options[run[0]])
            sizes = [requests[f].num_segments for f in run]
            for feature, part in zip(run, combined.split(sizes), strict=True):
                out[feature] = shape_output(part, requests[feature], self.options[feature])
            start = stop
        return out

    def lookup_stats(self) -> dict[str, dict[str, int]]:
        """Per physical table: ids new, admitted, refused and evicted by the last forward."""
        return {table.name: table.last_stats.as_dict() for table in self.tables.values()}

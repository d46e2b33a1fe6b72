"""``EmbeddingEngine``: embeds many features with one lookup per merged table (RecIS API).

Features whose :class:`EmbeddingOption` s agree on storage (dim, dtype, initializer, hooks, …)
share one physical :class:`HashTable`; each ``shared_name`` is a logical table inside it, keyed by
(id, tag) so ids stay whole. A forward pass deduplicates the ids of all features of a table, looks
them up once, then combines each feature's rows with its own combiner — features with the same
combiner in one call.

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

import itertools
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from recis.core.dedupe import first_occurrences
from recis.core.threads import beside_framework
from recis.nn.modules.embedding import (
    EmbeddingOption,
    Request,
    combine_segments,
    make_request,
    shape_output,
)
from recis.nn.modules.hashtable import HashTable
from recis.ragged.tensor import RaggedTensor


@dataclass
class _Group:
    """Features stored in one physical table, ordered so equal runtime options are adjacent."""

    table: HashTable
    features: list[str]
    tags: dict[str, int]


class EmbeddingEngine(nn.Module):
    """Embeds the features named in ``emb_options`` (see the module docstring)."""

    def __init__(self, emb_options: dict[str, EmbeddingOption]) -> None:
        super().__init__()
        self.options = dict(emb_options)
        self._groups: list[_Group] = []
        self.tables = nn.ModuleDict()
        by_storage: dict[str, list[str]] = {}
        for feature, option in self.options.items():
            by_storage.setdefault(option.coalesced_info(), []).append(feature)
        _check_shared_names(self.options, by_storage)
        for features in by_storage.values():
            self._add_group(sorted(features, key=lambda f: self.options[f].runtime_info()))

    def _add_group(self, features: list[str]) -> None:
        children = list(dict.fromkeys(self.options[f].shared_name for f in features))
        name = children[0] if len(children) == 1 else f"{children[0]}+{len(children) - 1}"
        table = self.options[features[0]].make_table(name, children)
        self.tables[str(len(self.tables))] = table
        tags = {f: children.index(self.options[f].shared_name) for f in features}
        self._groups.append(_Group(table, features, tags))

    @beside_framework
    def forward(self, batch: dict) -> dict:
        """Embeddings of the configured features; other entries pass through (ragged → dense)."""
        out = {}
        for group in self._groups:
            out.update(self._embed_group(group, batch))
        for key, value in batch.items():
            if key not in self.options:
                out[key] = value.to_dense() if isinstance(value, RaggedTensor) else value
        return out

    def _embed_group(self, group: _Group, batch: dict) -> dict[str, torch.Tensor]:
        requests = {}
        for feature in group.features:
            if feature not in batch:
                raise KeyError(f"EmbeddingEngine: the batch has no feature {feature!r}")
            requests[feature] = make_request(
                feature, batch[feature], use_weight=self.options[feature].use_weight
            )
        ids = np.concatenate([requests[f].ids for f in group.features])
        tags = np.repeat(
            [group.tags[f] for f in group.features], [requests[f].ids.size for f in group.features]
        )
        first, index = first_occurrences(ids, tags)
        counts = np.bincount(index, minlength=first.size)
        _, values = group.table.lookup_unique(ids[first], tags[first], counts)
        return self._combine(group, requests, values, index)

    def _combine(self, group, requests, values, index) -> dict[str, torch.Tensor]:
        """One combine call per run of features with equal runtime options."""
        out, start = {}, 0
        for _, run in itertools.groupby(
            group.features, key=lambda f: self.options[f].runtime_info()
        ):
            run = list(run)
            merged = _merge([requests[f] for f in run])
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


def _merge(requests: list[Request]) -> Request:
    """Concatenate requests: ids, shifted offsets and weights (ones where a feature has none)."""
    if len(requests) == 1:
        single = requests[0]
        return Request(single.ids, single.offsets, single.weights, (single.num_segments,), False)
    starts = np.cumsum([0] + [r.ids.size for r in requests])
    offsets = np.concatenate(
        [[0]] + [r.offsets[1:] + s for r, s in zip(requests, starts, strict=False)]
    )
    weights = None
    if any(r.weights is not None for r in requests):
        weights = np.concatenate(
            [
                r.weights if r.weights is not None else np.ones(r.ids.size, np.float32)
                for r in requests
            ]
        )
    segments = sum(r.num_segments for r in requests)
    return Request(
        np.concatenate([r.ids for r in requests]),
        offsets.astype(np.int64),
        weights,
        (segments,),
        False,
    )


def _check_shared_names(
    options: dict[str, EmbeddingOption], by_storage: dict[str, list[str]]
) -> None:
    owner: dict[str, str] = {}
    for info, features in by_storage.items():
        for feature in features:
            name = options[feature].shared_name
            if owner.setdefault(name, info) != info:
                raise ValueError(
                    f"shared_name {name!r} is used by features with different storage options "
                    f"(dim, dtype, initializer, hooks, ...); feature {feature!r} differs"
                )

"""``EmbeddingEngine``: embeds many features with one lookup per merged table (RecIS API).

A torch module over the engine's :class:`~recis.embedding.embedder.Embedder`: features whose
:class:`EmbeddingOption` s agree on storage (dim, dtype, initializer, hooks, …) share one
physical :class:`HashTable`; each ``shared_name`` is a logical table inside it, keyed by
(id, tag) so ids stay whole. A forward pass deduplicates the ids of all features of a table, looks
them up once, then combines each feature's rows with its own combiner — features with the same
combiner in one call (a ``no_reduce`` feature gives its distinct ids' rows uncombined, as a
:class:`~recis.backends.torch.no_reduce.NoReduceEmbedding`). The activations enter torch as one
autograd node, and their gradients return to the engine in one call. Tables of
``EmbeddingOption(device="cuda")`` take CUDA tensors and keep the whole lookup on the GPU.

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

import logging

import torch
from torch import nn

from recis.backends.torch.autograd import embed
from recis.backends.torch.bridge import beside_torch
from recis.backends.torch.embedding import EmbeddingOption, autocast_output, make_request
from recis.backends.torch.no_reduce import (
    NoReduceEmbedding,
    distinct_ids,
    flat_ids,
    innermost_offsets,
)
from recis.backends.torch.ragged import RaggedTensor
from recis.embedding.embedder import Embedder

logger = logging.getLogger(__name__)


class EmbeddingEngine(nn.Module):
    """Embeds the features named in ``emb_options`` (see the module docstring)."""

    def __init__(self, emb_options: dict[str, EmbeddingOption]) -> None:
        super().__init__()
        self.options = dict(emb_options)
        self.tables = nn.ModuleDict()
        self.embedder = Embedder(self.options, make_table=self._add_table)
        self._trigger = torch.zeros((), requires_grad=True)  # makes autograd call our backward
        self._reported_missing: set[str] = set()

    def _add_table(self, option: EmbeddingOption, name: str, children: list[str]):
        table = option.make_table(name, children)
        self.tables[str(len(self.tables))] = table
        return table.table

    @beside_torch
    def forward(self, batch: dict) -> dict:
        """Embeddings of the configured features; other entries pass through (ragged → dense,
        but int8 strings stay ragged). A configured feature absent from the batch has no output,
        as in RecIS (logged once).

        Under torch.distributed with several ranks this is a collective (the tables are sharded
        over the ranks): every rank calls it once per step, with the same features.
        """
        batch, uncombined = self._distinct_inputs(batch)
        requests = {
            feature: make_request(
                feature, batch[feature], use_weight=option.use_weight, device=option.device
            )
            for feature, option in self.options.items()
            if feature in batch
        }
        missing = [feature for feature in self.options if feature not in batch]
        self._report_missing(missing)
        out = {}
        if requests:
            batch_size = next(iter(requests.values())).prefix[0]
            for feature in missing:  # looked up as empty rows, so the tables' calls stay alike
                requests[feature] = self._empty_request(feature, batch_size)
            train = self.training and torch.is_grad_enabled()
            out = embed(self.embedder, requests, train=train, trigger=self._trigger)
            out = {f: autocast_output(value) for f, value in out.items() if f not in missing}
            for feature, (ids, reverse_index, offsets) in uncombined.items():
                out[feature] = NoReduceEmbedding(self._rows(feature, ids), reverse_index, offsets)
        for key, value in batch.items():
            if key not in self.options:
                out[key] = _passed_through(value)
        return out

    def _distinct_inputs(self, batch: dict) -> tuple[dict, dict]:
        """The batch with each ``no_reduce`` feature's input made empty (it is looked up apart,
        :meth:`_rows`), and per such feature its distinct ids, reverse index and offsets."""
        batch, uncombined = dict(batch), {}
        for feature, option in self.options.items():
            if getattr(option, "no_reduce", False) and feature in batch:
                value = batch[feature]
                ids, reverse_index = distinct_ids(flat_ids(value))
                uncombined[feature] = (ids, reverse_index, innermost_offsets(value))
                batch[feature] = self._empty_input(feature, value.shape[0])
        return batch, uncombined

    def _rows(self, feature: str, ids: torch.Tensor) -> torch.Tensor:
        """The rows of ``ids`` in ``feature``'s logical table (detached if it is frozen)."""
        group = next(g for g in self.embedder._groups if feature in g.features)
        rows = self._ht[group.name](ids, tags=group.tags[feature])
        return rows if self.options[feature].trainable else rows.detach()

    def _report_missing(self, missing: list[str]) -> None:
        for feature in missing:
            if feature not in self._reported_missing:
                self._reported_missing.add(feature)
                logger.warning("EmbeddingEngine: feature %r is not in the batch; skipped", feature)

    def _empty_input(self, feature: str, batch_size: int) -> RaggedTensor:
        device = torch.device(self.options[feature].device)
        return RaggedTensor(
            torch.empty(0, dtype=torch.int64, device=device),
            torch.zeros(batch_size + 1, dtype=torch.int64, device=device),
        )

    def _empty_request(self, feature: str, batch_size: int):
        device = torch.device(self.options[feature].device)
        return make_request(feature, self._empty_input(feature, batch_size), device=device)

    @property
    def _fea_to_ht(self) -> dict[str, str]:
        """RecIS's map of each feature to its physical table's name."""
        return {f: group.name for group in self.embedder._groups for f in group.features}

    @property
    def _ht(self) -> dict:
        """RecIS's map of physical table names to their tables (a table's ``_hashtable`` is
        itself)."""
        return {table.name: table for table in self.tables.values()}

    def lookup_stats(self) -> dict[str, dict[str, int]]:
        """Per physical table: ids new, admitted, refused and evicted by the last forward."""
        return self.embedder.lookup_stats()


def _passed_through(value):
    """A batch entry that is not embedded: a RaggedTensor becomes dense, unless it holds int8
    strings."""
    if isinstance(value, RaggedTensor) and value.values().dtype != torch.int8:
        return value.to_dense()
    return value

"""``EmbeddingEngine``: embeds many features with one lookup per merged table (RecIS API).

A torch module over the engine's :class:`~recis.embedding.embedder.Embedder`: features whose
:class:`EmbeddingOption` s agree on storage (dim, dtype, initializer, hooks, …) share one
physical :class:`HashTable`; each ``shared_name`` is a logical table inside it, keyed by
(id, tag) so ids stay whole. A forward pass deduplicates the ids of all features of a table, looks
them up once, then combines each feature's rows with its own combiner — features with the same
combiner in one call. The activations enter torch as one autograd node, and their gradients
return to the engine in one call. Tables of ``EmbeddingOption(device="cuda")`` take CUDA tensors
and keep the whole lookup on the GPU.

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
        for key, value in batch.items():
            if key not in self.options:
                out[key] = _passed_through(value)
        return out

    def _report_missing(self, missing: list[str]) -> None:
        for feature in missing:
            if feature not in self._reported_missing:
                self._reported_missing.add(feature)
                logger.warning("EmbeddingEngine: feature %r is not in the batch; skipped", feature)

    def _empty_request(self, feature: str, batch_size: int):
        device = torch.device(self.options[feature].device)
        empty = RaggedTensor(
            torch.empty(0, dtype=torch.int64, device=device),
            torch.zeros(batch_size + 1, dtype=torch.int64, device=device),
        )
        return make_request(feature, empty, device=device)

    def lookup_stats(self) -> dict[str, dict[str, int]]:
        """Per physical table: ids new, admitted, refused and evicted by the last forward."""
        return self.embedder.lookup_stats()


def _passed_through(value):
    """A batch entry that is not embedded: a RaggedTensor becomes dense, unless it holds int8
    strings."""
    if isinstance(value, RaggedTensor) and value.values().dtype != torch.int8:
        return value.to_dense()
    return value

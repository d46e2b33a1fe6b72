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

import torch
from torch import nn

from recis.backends.torch.autograd import embed
from recis.backends.torch.bridge import beside_torch
from recis.backends.torch.embedding import EmbeddingOption, autocast_output, make_request
from recis.backends.torch.ragged import RaggedTensor
from recis.embedding.embedder import Embedder


class EmbeddingEngine(nn.Module):
    """Embeds the features named in ``emb_options`` (see the module docstring)."""

    def __init__(self, emb_options: dict[str, EmbeddingOption]) -> None:
        super().__init__()
        self.options = dict(emb_options)
        self.tables = nn.ModuleDict()
        self.embedder = Embedder(self.options, make_table=self._add_table)
        self._trigger = torch.zeros((), requires_grad=True)  # makes autograd call our backward

    def _add_table(self, option: EmbeddingOption, name: str, children: list[str]):
        table = option.make_table(name, children)
        self.tables[str(len(self.tables))] = table
        return table.table

    @beside_torch
    def forward(self, batch: dict) -> dict:
        """Embeddings of the configured features; other entries pass through (ragged → dense).

        Under torch.distributed with several ranks this is a collective (the tables are sharded
        over the ranks): every rank calls it once per step.
        """
        requests = {}
        for feature, option in self.options.items():
            if feature not in batch:
                raise KeyError(f"EmbeddingEngine: the batch has no feature {feature!r}")
            requests[feature] = make_request(
                feature, batch[feature], use_weight=option.use_weight, device=option.device
            )
        train = self.training and torch.is_grad_enabled()
        out = embed(self.embedder, requests, train=train, trigger=self._trigger)
        out = {feature: autocast_output(value) for feature, value in out.items()}
        for key, value in batch.items():
            if key not in self.options:
                out[key] = value.to_dense() if isinstance(value, RaggedTensor) else value
        return out

    def lookup_stats(self) -> dict[str, dict[str, int]]:
        """Per physical table: ids new, admitted, refused and evicted by the last forward."""
        return self.embedder.lookup_stats()

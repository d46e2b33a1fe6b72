"""``EmbeddingOption`` (a feature's table and combiner) and ``DynamicEmbedding`` (RecIS API).

A feature's ids — a dense ``[B, k]`` tensor (k ids per sample) or a :class:`RaggedTensor` (a
variable-length list per sample, optionally weighted, optionally a fixed-length sequence of lists)
— are looked up in a growable table and combined per sample by ``"sum"``, ``"mean"`` (weighted:
Σw·e / Σw) or ``"tile"`` (the first ``tile_len`` rows, zero-padded). With
``EmbeddingOption(device="cuda")`` the ids are CUDA tensors and everything stays on the GPU.

>>> import torch
>>> from recis.backends.torch.ragged import RaggedTensor
>>> emb = DynamicEmbedding(EmbeddingOption(embedding_dim=4, shared_name="tags", combiner="mean"))
>>> ids = RaggedTensor(torch.tensor([3, 9, 9]), [torch.tensor([0, 2, 3])])
>>> emb(ids).shape
torch.Size([2, 4])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from recis.backends.torch.autograd import embed
from recis.backends.torch.bridge import as_engine, beside_torch
from recis.backends.torch.hashtable import HashTable, storage_dtype
from recis.backends.torch.ragged import RaggedTensor
from recis.embedding.embedder import Embedder
from recis.embedding.option import EmbeddingOptionBase
from recis.embedding.plan import Request, dense_request, ragged_request


@dataclass
class EmbeddingOption(EmbeddingOptionBase):
    """How a feature is embedded: RecIS's fields (see
    :class:`~recis.embedding.option.EmbeddingOptionBase`), ``dtype`` a torch dtype,
    ``device`` ``"cpu"`` or ``"cuda"`` (the table's, and the ids'). With ``no_reduce=True`` the
    feature's output is a :class:`~recis.backends.torch.no_reduce.NoReduceEmbedding` (its
    distinct ids' rows, uncombined) rather than a tensor.

    Features whose options agree on :meth:`coalesced_info` share one physical table; features
    with the same ``shared_name`` share rows.
    """

    dtype: torch.dtype = torch.float32
    no_reduce: bool = False

    def storage_dtype(self) -> np.dtype:
        return storage_dtype(self.dtype)

    def make_table(self, name: str, children: list[str]) -> HashTable:
        """The physical table for options like this one, holding ``children``."""
        return HashTable(
            [-1, self.embedding_dim],
            block_size=self.block_size,
            dtype=self.dtype,
            device=self.device,
            coalesced=True,
            children=children,
            initializer=self.initializer,
            name=name,
            grad_reduce_by=self.grad_reduce_by,
            filter_hook=self.filter_hook,
            admit_hook=self.admit_hook,
            seed=self.table_seed,
            capacity=self.capacity,
            storage=self.storage,
            trainable=self.trainable,
        )


def make_request(name: str, value, weights=None, use_weight: bool = True, device="cpu") -> Request:
    """Turn a feature's input (dense ids tensor or RaggedTensor), moved to ``device`` (its
    table's), into a :class:`Request`."""
    if isinstance(value, RaggedTensor):
        if value.device.type != torch.device(device).type:
            value = value.to(device)
        return ragged_request(name, value.to_engine(), use_weight)
    if not isinstance(value, torch.Tensor) or value.is_floating_point():
        raise TypeError(
            f"feature {name!r}: expected an integer tensor or RaggedTensor, got {_kind(value)}"
        )
    ids = as_engine(value.to(device), f"feature {name!r}")
    if weights is None or not use_weight:
        return dense_request(ids)
    flat_weights = as_engine(weights.to(device).float(), f"feature {name!r} weights")
    try:
        return dense_request(ids, flat_weights)
    except ValueError as error:
        raise ValueError(f"feature {name!r}: {error}") from None


def _kind(value) -> str:
    return f"{type(value).__name__}" + (f" of {value.dtype}" if hasattr(value, "dtype") else "")


def autocast_output(out: torch.Tensor) -> torch.Tensor:
    """An activation in the autocast dtype when autocast is on (else unchanged)."""
    if torch.is_autocast_enabled(out.device.type):
        out = out.to(torch.get_autocast_dtype(out.device.type))
    return out


class DynamicEmbedding(nn.Module):
    """One growable table and its combiner (see the module docstring). ``pg`` is ignored."""

    def __init__(self, emb_opt: EmbeddingOption, pg=None) -> None:
        super().__init__()
        self.option = emb_opt
        self.embedder = Embedder({emb_opt.shared_name: emb_opt}, make_table=self._make_table)
        self._trigger = torch.zeros((), requires_grad=True)  # makes autograd call our backward

    def _make_table(self, option: EmbeddingOption, name: str, children: list[str]):
        self.hashtable = option.make_table(name, children)
        return self.hashtable.table

    @beside_torch
    def forward(self, input_ids, input_weights=None) -> torch.Tensor:
        """Embed ``input_ids`` (dense ``[..., k]`` or RaggedTensor; ragged weights are used)."""
        option = self.option
        request = make_request(
            option.shared_name, input_ids, input_weights, option.use_weight, option.device
        )
        table = self.hashtable
        train = table.training and torch.is_grad_enabled()
        (out,) = embed(
            self.embedder, {option.shared_name: request}, train=train, trigger=self._trigger
        ).values()
        return autocast_output(out)

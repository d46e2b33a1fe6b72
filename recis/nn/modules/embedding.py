"""``EmbeddingOption`` (a feature's table and combiner) and ``DynamicEmbedding`` (RecIS API).

A feature's ids — a dense ``[B, k]`` tensor (k ids per sample) or a :class:`RaggedTensor` (a
variable-length list per sample, optionally weighted, optionally a fixed-length sequence of lists)
— are looked up in a growable table and combined per sample by ``"sum"``, ``"mean"`` (weighted:
Σw·e / Σw) or ``"tile"`` (the first ``tile_len`` rows, zero-padded).

>>> import torch
>>> from recis.ragged.tensor import RaggedTensor
>>> emb = DynamicEmbedding(EmbeddingOption(embedding_dim=4, shared_name="tags", combiner="mean"))
>>> ids = RaggedTensor(torch.tensor([3, 9, 9]), [torch.tensor([0, 2, 3])])
>>> emb(ids).shape
torch.Size([2, 4])
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from recis.core import interop
from recis.core.dedupe import first_occurrences
from recis.core.embedding_plan import Request, dense_request
from recis.core.threads import beside_framework
from recis.nn.functional.embedding_ops import combine
from recis.nn.hashtable_hook import AdmitHook, FilterHook
from recis.nn.initializers import ConstantInitializer
from recis.nn.modules.hashtable import HashTable
from recis.ragged.tensor import RaggedTensor

COMBINERS = ("sum", "mean", "tile")


@dataclass
class EmbeddingOption:
    """How a feature is embedded (RecIS's fields; ``seed`` and ``capacity`` are ours).

    Features whose options agree on :meth:`coalesced_info` share one physical table; features
    with the same ``shared_name`` share rows.
    """

    embedding_dim: int = 16
    block_size: int = 10240
    dtype: torch.dtype = torch.float32
    device: str | torch.device = "cpu"
    trainable: bool = True
    pg: object = None
    max_partition_num: int = 65536
    shared_name: str = "embedding"
    children: list[str] | None = None
    coalesced: bool = False
    initializer: object = None
    use_weight: bool = True
    combiner: str = "sum"
    combiner_kwargs: dict | None = None
    grad_reduce_by: str = "worker"
    filter_hook: FilterHook | None = None
    admit_hook: AdmitHook | None = None
    fp16_enabled: bool = False
    seed: int = 0
    capacity: int = 1024

    def __post_init__(self) -> None:
        if self.combiner not in COMBINERS:
            raise ValueError(f"{self.shared_name}: combiner must be one of {COMBINERS}")
        if self.combiner == "tile" and "tile_len" not in (self.combiner_kwargs or {}):
            raise ValueError(
                f"{self.shared_name}: the tile combiner needs combiner_kwargs={{'tile_len': L}}"
            )
        if self.initializer is None:
            self.initializer = ConstantInitializer()

    @property
    def tile_len(self) -> int | None:
        return (self.combiner_kwargs or {}).get("tile_len") if self.combiner == "tile" else None

    def coalesced_info(self) -> str:
        """JSON of the storage properties: options with equal info share a physical table."""
        return json.dumps(
            {
                "dim": self.embedding_dim,
                "dtype": str(self.dtype),
                "device": str(self.device),
                "initializer": self.initializer.config(),
                "seed": getattr(self.initializer, "seed", None) or self.seed,
                "grad_reduce_by": self.grad_reduce_by,
                "filter_hook": None if self.filter_hook is None else self.filter_hook.info(),
                "admit_hook": None if self.admit_hook is None else self.admit_hook.info(),
                "block_size": self.block_size,
            },
            sort_keys=True,
        )

    def runtime_info(self) -> str:
        """JSON of the per-request properties: combiner, weights and trainability."""
        return json.dumps(
            {
                "combiner": self.combiner,
                "tile_len": self.tile_len,
                "use_weight": self.use_weight,
                "trainable": self.trainable,
            },
            sort_keys=True,
        )

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
            seed=self.seed,
            capacity=self.capacity,
        )


def make_request(name: str, value, weights=None, use_weight: bool = True) -> Request:
    """Turn a feature's input (dense ids tensor or RaggedTensor) into a :class:`Request`."""
    if isinstance(value, RaggedTensor):
        return _ragged_request(name, value, use_weight)
    if not isinstance(value, torch.Tensor) or value.is_floating_point():
        raise TypeError(
            f"feature {name!r}: expected an integer tensor or RaggedTensor, got {_kind(value)}"
        )
    ids = interop.as_engine_array(value.detach().contiguous(), f"feature {name!r}")
    if weights is None or not use_weight:
        return dense_request(ids)
    flat_weights = interop.as_engine_array(
        weights.detach().float().contiguous(), f"feature {name!r} weights"
    )
    try:
        return dense_request(ids, flat_weights)
    except ValueError as error:
        raise ValueError(f"feature {name!r}: {error}") from None


def _ragged_request(name: str, value: RaggedTensor, use_weight: bool) -> Request:
    engine = value.to_engine()
    shape = value.shape
    segments = engine.offsets[-1].size - 1
    if int(np.prod(shape[:-1])) != segments:
        raise ValueError(
            f"feature {name!r}: RaggedTensor of shape {shape} must be padded before lookup "
            f"(every dimension but the last fixed, e.g. by SequenceTruncate)"
        )
    ids = engine.values if engine.values.dtype == np.int64 else engine.values.astype(np.int64)
    weights = engine.weights if use_weight else None
    return Request(
        ids, engine.offsets[-1].astype(np.int64, copy=False), weights, tuple(shape[:-1]), False
    )


def _kind(value) -> str:
    return f"{type(value).__name__}" + (f" of {value.dtype}" if hasattr(value, "dtype") else "")


def combine_segments(
    values: torch.Tensor, index: np.ndarray, request: Request, option: EmbeddingOption
) -> torch.Tensor:
    """Combine the looked-up ``values`` per segment of ``request``: ``[segments, (L,) dim]``."""
    if not option.trainable:
        values = values.detach()
    return combine(
        values, index, request.offsets, request.weights, option.combiner, option.tile_len
    )


def shape_output(out: torch.Tensor, request: Request, option: EmbeddingOption) -> torch.Tensor:
    """``[segments, (tile_len,) dim]`` → the feature's output shape, in the autocast dtype."""
    if option.combiner == "tile" and request.dense:
        out = out.reshape(*request.prefix, option.tile_len * option.embedding_dim)
    else:
        out = out.reshape(*request.prefix, *out.shape[1:])
    if torch.is_autocast_enabled("cpu"):
        out = out.to(torch.get_autocast_dtype("cpu"))
    return out


class DynamicEmbedding(nn.Module):
    """One growable table and its combiner (see the module docstring). ``pg`` is ignored."""

    def __init__(self, emb_opt: EmbeddingOption, pg=None) -> None:
        super().__init__()
        self.option = emb_opt
        self.hashtable = emb_opt.make_table(emb_opt.shared_name, [emb_opt.shared_name])

    @beside_framework
    def forward(self, input_ids, input_weights=None) -> torch.Tensor:
        """Embed ``input_ids`` (dense ``[..., k]`` or RaggedTensor; ragged weights are used)."""
        request = make_request(
            self.option.shared_name, input_ids, input_weights, self.option.use_weight
        )
        first, index = first_occurrences(request.ids)
        counts = np.bincount(index, minlength=first.size)
        _, values = self.hashtable.lookup_unique(request.ids[first], None, counts)
        return shape_output(
            combine_segments(values, index, request, self.option), request, self.option
        )

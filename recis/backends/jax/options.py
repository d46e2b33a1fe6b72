"""``EmbeddingOption`` for the JAX backend: how a feature is embedded.

The fields are those of the torch backend's ``recis.nn.EmbeddingOption``; ``dtype`` is a NumPy or
JAX dtype (``float32``, ``bfloat16`` or ``float16``: the storage dtype of the table's rows).
Features whose options agree on :meth:`~EmbeddingOption.coalesced_info` share one physical table;
features with the same ``shared_name`` share rows.

>>> from recis.core.initializers import NormalInitializer
>>> a = EmbeddingOption(embedding_dim=8, shared_name="user", initializer=NormalInitializer())
>>> b = EmbeddingOption(embedding_dim=8, shared_name="item", initializer=NormalInitializer())
>>> a.coalesced_info() == b.coalesced_info(), a.runtime_info() == b.runtime_info()
(True, True)
>>> a.make_table("user+item", ["user", "item"]).children
['user', 'item']
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import ml_dtypes
import numpy as np

from recis.core.initializers import ConstantInitializer
from recis.core.table import EmbeddingTable

COMBINERS = ("sum", "mean", "tile")
STORAGE_DTYPES = frozenset(np.dtype(t) for t in ("float32", "float16", ml_dtypes.bfloat16))


@dataclass
class EmbeddingOption:
    """How a feature is embedded (the torch backend's fields; ``seed`` and ``capacity`` are ours).

    ``admit_hook`` and ``filter_hook`` are RecIS's ``AdmitHook``/``FilterHook`` (any object with
    ``build()`` returning an engine policy and ``info()`` describing it). ``device``, ``pg`` and
    ``max_partition_num`` are accepted for compatibility; tables live in host memory.
    """

    embedding_dim: int = 16
    block_size: int = 10240
    dtype: Any = np.float32
    device: str = "cpu"
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
    filter_hook: object = None
    admit_hook: object = None
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
        if self.grad_reduce_by not in ("worker", "id"):
            raise ValueError(f"{self.shared_name}: grad_reduce_by must be 'worker' or 'id'")
        self.dtype = np.dtype(self.dtype)
        if self.dtype not in STORAGE_DTYPES:
            raise TypeError(
                f"{self.shared_name}: dtype must be float32, float16 or bfloat16, got {self.dtype}"
            )
        if self.initializer is None:
            self.initializer = ConstantInitializer()

    @property
    def tile_len(self) -> int | None:
        return (self.combiner_kwargs or {}).get("tile_len") if self.combiner == "tile" else None

    @property
    def table_seed(self) -> int:
        """The seed of the per-id initial values (an initializer's own seed wins)."""
        return getattr(self.initializer, "seed", None) or self.seed

    def coalesced_info(self) -> str:
        """JSON of the storage properties: options with equal info share a physical table."""
        return json.dumps(
            {
                "dim": self.embedding_dim,
                "dtype": self.dtype.name,
                "device": str(self.device),
                "initializer": self.initializer.config(),
                "seed": self.table_seed,
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

    def make_table(self, name: str, children: list[str]) -> EmbeddingTable:
        """The physical table for options like this one, holding the logical tables
        ``children``."""
        return EmbeddingTable(
            name,
            self.embedding_dim,
            self.initializer,
            seed=self.table_seed,
            dtype=self.dtype,
            block_rows=1 << max(0, int(self.block_size) - 1).bit_length(),
            capacity=self.capacity,
            children=children,
            admission=None if self.admit_hook is None else self.admit_hook.build(),
            eviction=None if self.filter_hook is None else self.filter_hook.build(),
        )

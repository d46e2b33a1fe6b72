"""How a feature is embedded, independent of the framework.

:class:`EmbeddingOptionBase` holds RecIS's ``EmbeddingOption`` fields, and takes ``seed``,
``capacity``, ``padding_id`` and ``storage`` as keyword arguments kept as attributes (not
dataclass fields, so ``dataclasses.asdict`` gives RecIS's fields only); front ends subclass
it, each reading ``dtype`` in its own way (:meth:`~EmbeddingOptionBase.storage_dtype`).
Options that agree on ``coalesced_info()`` share a physical table; options that agree on
``runtime_info()`` are combined in one call. ``hdmp_group_size`` and ``hdmp_group_reduce_by``
(RecIS's HDMP gradient groups, not provided here) must stay None.
:class:`EmbeddingOption` is the framework-free one (``dtype`` a NumPy or JAX dtype, tables on
``device`` ``"cpu"`` or ``"cuda"``), used by the JAX front end.

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
from dataclasses import InitVar, dataclass
from typing import Any

import ml_dtypes
import numpy as np

from recis.core.initializers import ConstantInitializer
from recis.core.table import EmbeddingTable
from recis.core.tiers import DeviceTiers, StorageTiers

COMBINERS = ("sum", "mean", "tile")
STORAGE_DTYPES = frozenset(np.dtype(t) for t in ("float32", "float16", ml_dtypes.bfloat16))


@dataclass
class EmbeddingOptionBase:
    """A feature's table (dim, dtype, initializer, hooks…) and combiner.

    ``admit_hook`` / ``filter_hook`` are :class:`~recis.embedding.policy_hooks.AdmitHook` /
    ``FilterHook`` (anything with ``build()`` and ``info()``). ``pg`` and ``max_partition_num``
    are accepted for compatibility. ``padding_id`` (default None: none) is the id that marks
    padding in dense ids: such entries are left out of lookups, gradients and the combiner's
    counts (see :mod:`recis.core.padded`). ``storage`` (default None: every row in RAM, or on
    the device) is a :class:`~recis.core.tiers.StorageTiers`: rows beyond its RAM budget live on
    disk, or for a GPU table a :class:`~recis.core.tiers.DeviceTiers`: rows beyond its device
    budget live in pinned host memory; each physical table gets the budgets.
    """

    embedding_dim: int = 16
    block_size: int = 10240
    dtype: Any = np.float32
    device: Any = "cpu"
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
    hdmp_group_size: int | None = None
    hdmp_group_reduce_by: str | None = None
    seed: InitVar[int] = 0
    capacity: InitVar[int] = 1024
    padding_id: InitVar[int | None] = None
    storage: InitVar[StorageTiers | DeviceTiers | None] = None

    def __post_init__(self, seed, capacity, padding_id, storage) -> None:
        self.seed, self.capacity, self.padding_id, self.storage = (
            seed,
            capacity,
            padding_id,
            storage,
        )
        for name in ("hdmp_group_size", "hdmp_group_reduce_by"):
            if getattr(self, name) is not None:
                raise ValueError(
                    f"{self.shared_name}: {name} configures RecIS's HDMP group reduction of "
                    "gradients (grad_reduce_by='hdmp_group_sum'), which this package does not "
                    "provide; leave it None"
                )
        if self.combiner not in COMBINERS:
            raise ValueError(f"{self.shared_name}: combiner must be one of {COMBINERS}")
        if self.combiner == "tile" and "tile_len" not in (self.combiner_kwargs or {}):
            raise ValueError(
                f"{self.shared_name}: the tile combiner needs combiner_kwargs={{'tile_len': L}}"
            )
        if self.grad_reduce_by not in ("worker", "id"):
            raise ValueError(f"{self.shared_name}: grad_reduce_by must be 'worker' or 'id'")
        if self.storage_dtype() not in STORAGE_DTYPES:
            raise TypeError(
                f"{self.shared_name}: dtype must be float32, float16 or bfloat16, got {self.dtype}"
            )
        if self.initializer is None:
            self.initializer = ConstantInitializer()

    def storage_dtype(self) -> np.dtype:
        """The NumPy dtype of the table's rows (backends map their own dtypes)."""
        return np.dtype(self.dtype)

    @property
    def tile_len(self) -> int | None:
        return (self.combiner_kwargs or {}).get("tile_len") if self.combiner == "tile" else None

    @property
    def table_seed(self) -> int:
        """The seed of the per-id initial values (an initializer's own seed wins)."""
        return getattr(self.initializer, "seed", None) or self.seed

    @property
    def block_rows(self) -> int:
        """``block_size`` rounded up to a power of two (the row store's block)."""
        return 1 << max(0, int(self.block_size) - 1).bit_length()

    def coalesced_info(self) -> str:
        """JSON of the storage properties: options with equal info share a physical table."""
        return json.dumps(
            {
                "dim": self.embedding_dim,
                "dtype": self.storage_dtype().name,
                "device": str(self.device),
                "initializer": self.initializer.config(),
                "seed": self.table_seed,
                "grad_reduce_by": self.grad_reduce_by,
                "filter_hook": None if self.filter_hook is None else self.filter_hook.info(),
                "admit_hook": None if self.admit_hook is None else self.admit_hook.info(),
                "block_size": self.block_size,
                "storage": None if self.storage is None else self.storage.info(),
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

    def table_arguments(self, children: list[str]) -> dict:
        """Keyword arguments of the engine table holding the logical tables ``children``."""
        return {
            "dim": self.embedding_dim,
            "initializer": self.initializer,
            "seed": self.table_seed,
            "dtype": self.storage_dtype(),
            "block_rows": self.block_rows,
            "capacity": self.capacity,
            "children": children,
            "admission": None if self.admit_hook is None else self.admit_hook.build(),
            "eviction": None if self.filter_hook is None else self.filter_hook.build(),
            "storage": self.storage,
        }


@dataclass
class EmbeddingOption(EmbeddingOptionBase):
    """How a feature is embedded; its table is an engine table on ``device``."""

    def make_table(self, name: str, children: list[str]) -> EmbeddingTable:
        """The physical table for options like this one, holding ``children``."""
        return EmbeddingTable(name, device=str(self.device), **self.table_arguments(children))

"""``EmbeddingOption`` for the JAX backend: how a feature is embedded.

The fields are RecIS's (:class:`~recis.embedding.option.EmbeddingOptionBase`); ``dtype`` is
a NumPy or JAX dtype (``float32``, ``bfloat16`` or ``float16``: the storage dtype of the table's
rows). Features whose options agree on ``coalesced_info()`` share one physical table; features
with the same ``shared_name`` share rows. Hooks come from :mod:`recis.embedding.policy_hooks`.
``device`` is ``"cpu"`` (tables in host memory) or ``"cuda"`` (tables on the GPU; the features'
ids are then JAX GPU arrays or CuPy arrays, and the activations JAX GPU arrays).

>>> from recis.core.initializers import NormalInitializer
>>> a = EmbeddingOption(embedding_dim=8, shared_name="user", initializer=NormalInitializer())
>>> b = EmbeddingOption(embedding_dim=8, shared_name="item", initializer=NormalInitializer())
>>> a.coalesced_info() == b.coalesced_info(), a.runtime_info() == b.runtime_info()
(True, True)
>>> a.make_table("user+item", ["user", "item"]).children
['user', 'item']
"""

from __future__ import annotations

from dataclasses import dataclass

from recis.core.table import EmbeddingTable
from recis.embedding.option import EmbeddingOptionBase


@dataclass
class EmbeddingOption(EmbeddingOptionBase):
    """How a feature is embedded; tables live on ``device`` (``"cpu"`` or ``"cuda"``)."""

    def make_table(self, name: str, children: list[str]) -> EmbeddingTable:
        """The physical table for options like this one, holding ``children``."""
        return EmbeddingTable(name, device=str(self.device), **self.table_arguments(children))

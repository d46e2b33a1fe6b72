"""``Embedder`` for JAX: the engine's embedding pipeline with activations as ``jax.Array`` s.

A thin adapter over :class:`recis.embedding.embedder.Embedder` (see there for the pipeline and
sharding): :meth:`Embedder.lookup` returns the activations as ``jax.Array`` s that share the
engine's memory (over DLPack, no copy), and :meth:`~recis.embedding.embedder.Embedder.
apply_gradients` takes the gradients w.r.t. them back, as JAX or NumPy arrays. Sparse work stays
outside ``jit``; a jitted dense step sits between the two calls.

Tables of ``EmbeddingOption(device="cuda")`` live on the GPU: ids (JAX GPU arrays or CuPy
arrays) enter the engine over DLPack, the activations leave as JAX GPU arrays, and the gradients
return the same way. The DLPack stream protocol orders the engine's kernels (on CuPy's current
stream) with JAX's work.

>>> import numpy as np
>>> embedder = Embedder({"item": EmbeddingOption(embedding_dim=4, shared_name="item")})
>>> out, context = embedder.lookup({"item": np.array([[5, 6], [5, 5]])})
>>> type(out["item"]).__name__, out["item"].shape
('ArrayImpl', (2, 4))
"""

from __future__ import annotations

from collections.abc import Mapping

import jax

from recis.distributed.communicator import Communicator
from recis.embedding import embedder
from recis.embedding.embedder import LookupContext
from recis.embedding.option import EmbeddingOption

__all__ = ["Embedder", "LookupContext"]


class Embedder(embedder.Embedder):
    """Embeds the features named in ``options`` for a JAX model (see the module docstring).

    Args:
        options: each feature's :class:`~recis.embedding.option.EmbeddingOption`.
        communicator: the ranks to shard the tables over (default: the distributed world, read
            at each lookup); one of a single rank means no sharding.
    """

    def __init__(
        self, options: Mapping[str, EmbeddingOption], communicator: Communicator | None = None
    ) -> None:
        for feature, option in options.items():
            if not isinstance(option, EmbeddingOption):
                raise TypeError(
                    f"feature {feature!r}: expected a recis.backends.jax EmbeddingOption, "
                    f"got {type(option).__name__}"
                )
        super().__init__(options, communicator)

    def lookup(
        self, batch: Mapping, *, train: bool = True, batch_size: int | None = None
    ) -> tuple[dict[str, jax.Array], LookupContext]:
        """Activations of every configured feature of ``batch`` as ``jax.Array`` s, and the
        context of the lookup (see :meth:`recis.embedding.embedder.Embedder.lookup`)."""
        values, context = super().lookup(batch, train=train, batch_size=batch_size)
        return {f: jax.dlpack.from_dlpack(v) for f, v in values.items()}, context

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

With ``mesh`` (a :class:`~recis.backends.jax.mesh.DataParallel` over several local devices),
each physical table is sharded row-wise over the mesh's devices
(:class:`~recis.backends.jax.device_tables.DeviceShardedTable`), by the owner rule that shards
tables over processes.

Misuse is loud (:mod:`~recis.backends.jax.misuse`): a lookup inside a JAX transformation raises
:class:`~recis.backends.jax.misuse.TracedLookupError`, and a training lookup whose gradients were
not applied (nor :meth:`Embedder.discard` ed) before the next training lookup or the sparse
optimizer's step raises :class:`~recis.backends.jax.misuse.UnappliedGradientsError`.

>>> import numpy as np
>>> embedder = Embedder({"item": EmbeddingOption(embedding_dim=4, shared_name="item")})
>>> out, context = embedder.lookup({"item": np.array([[5, 6], [5, 5]])})
>>> type(out["item"]).__name__, out["item"].shape
('ArrayImpl', (2, 4))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial

import jax

from recis.backends.jax.device_tables import DeviceShardedTable
from recis.backends.jax.mesh import DataParallel
from recis.backends.jax.misuse import check_not_traced, unapplied_error
from recis.core.table import EmbeddingTable
from recis.distributed.communicator import Communicator
from recis.distributed.world import default_communicator
from recis.embedding import embedder
from recis.embedding.embedder import LookupContext, TableFactory
from recis.embedding.option import EmbeddingOption

__all__ = ["Embedder", "LookupContext"]


class Embedder(embedder.Embedder):
    """Embeds the features named in ``options`` for a JAX model (see the module docstring).

    Args:
        options: each feature's :class:`~recis.embedding.option.EmbeddingOption`.
        communicator: the ranks to shard the tables over (default: the distributed world, read
            at each lookup); one of a single rank means no sharding.
        make_table: builds each physical table (see the engine's Embedder), e.g. to reuse
            existing ones.
        mesh: a :class:`~recis.backends.jax.mesh.DataParallel` whose devices each table's rows
            are sharded over (default: no sharding within the process).
    """

    def __init__(
        self,
        options: Mapping[str, EmbeddingOption],
        communicator: Communicator | None = None,
        make_table: TableFactory | None = None,
        mesh: DataParallel | None = None,
    ) -> None:
        for feature, option in options.items():
            if not isinstance(option, EmbeddingOption):
                raise TypeError(
                    f"feature {feature!r}: expected a recis.backends.jax EmbeddingOption, "
                    f"got {type(option).__name__}"
                )
        self.mesh = mesh
        self._processes = _process_count(communicator)
        if make_table is None and self.devices > 1:
            make_table = self._sharded_table
        super().__init__(options, communicator, make_table)
        self._pending: LookupContext | None = None

    @property
    def devices(self) -> int:
        """The devices each table's rows are sharded over (1: not sharded)."""
        return 1 if self.mesh is None else self.mesh.size

    def _sharded_table(self, option, name: str, children: list[str]) -> DeviceShardedTable:
        shards = [option.make_table(name, children) for _ in range(self.devices)]
        return DeviceShardedTable(shards, self._processes)

    def lookup(
        self, batch: Mapping, *, train: bool = True, batch_size: int | None = None
    ) -> tuple[dict[str, jax.Array], LookupContext]:
        """Activations of every configured feature of ``batch`` as ``jax.Array`` s, and the
        context of the lookup (see :meth:`recis.embedding.embedder.Embedder.lookup`)."""
        values, context = self.engine_lookup(batch, train=train, batch_size=batch_size)
        return {f: jax.dlpack.from_dlpack(v) for f, v in values.items()}, context

    def engine_lookup(
        self, batch: Mapping, *, train: bool = True, batch_size: int | None = None
    ) -> tuple[dict, LookupContext]:
        """:meth:`lookup` with the activations as the engine's arrays (NumPy, or CuPy for GPU
        tables), e.g. to hand a train step the features combined in one call as one array."""
        check_not_traced(self.features, batch)
        if train:
            self.check_applied("the next training lookup")
        values, context = super().lookup(batch, train=train, batch_size=batch_size)
        if train:
            self._pending = context
        return values, context

    def apply_gradients(
        self, context: LookupContext, grads: Mapping, *, allow_missing: bool = False
    ) -> None:
        """See :meth:`recis.embedding.embedder.Embedder.apply_gradients`."""
        super().apply_gradients(context, grads, allow_missing=allow_missing)
        if context is self._pending:
            self._pending = None

    def discard(self, context: LookupContext) -> None:
        """Give up ``context``'s gradients on purpose (e.g. a step skipped for overflow)."""
        if context is self._pending:
            self._pending = None

    def table_makers(self) -> dict[str, Callable[[], EmbeddingTable | DeviceShardedTable]]:
        """Per physical table, a function building an empty table like it (its option's
        ``make_table``, on each device of the mesh)."""
        makers = {}
        for group in self._groups:
            option = self.options[group.features[0]]
            make = self._sharded_table if self.devices > 1 else _plain_table
            makers[group.name] = partial(make, option, group.name, group.children)
        return makers

    def check_applied(self, before: str) -> None:
        """Raise :class:`~recis.backends.jax.misuse.UnappliedGradientsError` if the last
        training lookup's gradients were neither applied nor discarded ``before`` now."""
        if self._pending is not None:
            raise unapplied_error(self.features, before)


def _plain_table(option, name: str, children: list[str]) -> EmbeddingTable:
    return option.make_table(name, children)


def _process_count(communicator: Communicator | None) -> int:
    """The processes the tables are sharded over: ``communicator``'s, else the world's."""
    comm = communicator if communicator is not None else default_communicator()
    return 1 if comm is None else comm.world_size

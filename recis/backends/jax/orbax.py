"""An ``orbax.checkpoint`` handler for RecIS tables, so that orbax checkpoints of Flax models
include their sparse part.

``nnx.state(model)`` holds the tables as :class:`~recis.backends.jax.nnx_state.SparseTable`
variables, which orbax's standard handlers pass over (they have no arrays). Save them as one
more item of a composite checkpoint: :class:`TablesSave` writes every table of a model or state
into the item's directory ``tables/``, in RecIS's checkpoint format (:mod:`recis.checkpoint`:
rows and optimizer slots keyed by (table, id), policy state, and a sparse optimizer's counters
in the index metadata). :class:`TablesRestore` loads them into the tables of a model or state
(e.g. the abstract state of a freshly built model) exactly, and returns it. One process only.

>>> import tempfile, numpy as np, orbax.checkpoint as ocp
>>> from recis.backends.jax.flax import SparseEmbedding
>>> from recis.backends.jax import EmbeddingOption
>>> layer = SparseEmbedding({"f": EmbeddingOption(embedding_dim=2, shared_name="f")})
>>> _ = layer.tables["f"].find_or_insert(np.array([3, 5]))
>>> manager = ocp.CheckpointManager(tempfile.mkdtemp())
>>> manager.save(1, args=ocp.args.Composite(tables=TablesSave(layer)))
True
>>> manager.wait_until_finished()
>>> fresh = SparseEmbedding({"f": EmbeddingOption(embedding_dim=2, shared_name="f")})
>>> _ = manager.restore(1, args=ocp.args.Composite(tables=TablesRestore(fresh)))
>>> fresh.tables["f"].find(np.array([5, 3, 4])).tolist()
[1, 0, -1]
"""

from __future__ import annotations

import dataclasses
from typing import Any

import orbax.checkpoint as ocp
from etils import epath

from recis.backends.jax.nnx_state import sparse_tables
from recis.checkpoint import Checkpoint, CheckpointWriter, load_tables, plan_load
from recis.distributed.world import default_communicator
from recis.framework.checkpoint_base import SPARSE_OPTIMIZER, saved_sparse_optimizer

SUBDIRECTORY = "tables"


class TablesCheckpointHandler(ocp.CheckpointHandler):
    """Saves and restores RecIS tables (see the module docstring)."""

    def save(self, directory: epath.Path, args: TablesSave) -> None:
        _one_process()
        metadata = {}
        if args.sparse_optimizer is not None:
            metadata[SPARSE_OPTIMIZER] = args.sparse_optimizer.state_dict()
        with CheckpointWriter(epath.Path(directory) / SUBDIRECTORY) as writer:
            writer.write_tables(sparse_tables(args.item))
            writer.commit(metadata)

    def restore(self, directory: epath.Path, args: TablesRestore) -> Any:
        _one_process()
        checkpoint = Checkpoint(epath.Path(directory) / SUBDIRECTORY)
        tables = sparse_tables(args.item)
        plan = plan_load(checkpoint, tables, strict=args.strict)
        sources = load_tables(checkpoint, tables, plan, args.strict)
        if args.sparse_optimizer is not None:
            state = saved_sparse_optimizer(checkpoint, sources)
            if state is None:
                raise ValueError(f"{checkpoint!r} holds no sparse optimizer state")
            args.sparse_optimizer.load_state_dict(state)
        return args.item


@ocp.args.register_with_handler(TablesCheckpointHandler, for_save=True)
@dataclasses.dataclass
class TablesSave(ocp.args.CheckpointArgs):
    """Save the tables of ``item`` (an NNX model or state); with ``sparse_optimizer`` (a
    :class:`~recis.backends.jax.SparseOptimizer`), its counters too."""

    item: Any
    sparse_optimizer: Any = None


@ocp.args.register_with_handler(TablesCheckpointHandler, for_restore=True)
@dataclasses.dataclass
class TablesRestore(ocp.args.CheckpointArgs):
    """Load saved tables into those of ``item`` (an NNX model or state), which is returned;
    with ``sparse_optimizer``, its counters too. ``strict``: every table and field must match
    both ways (see :func:`recis.checkpoint.plan_load`)."""

    item: Any
    sparse_optimizer: Any = None
    strict: bool = True


def _one_process() -> None:
    comm = default_communicator()
    if comm is not None and comm.world_size > 1:
        raise NotImplementedError(
            "the orbax handler of RecIS tables serves one process; with tables sharded over "
            "ranks use recis.backends.jax.checkpoint.CheckpointManager"
        )

"""``SparseOptimizerCore``: the one driver of sparse optimizers, under both front ends.

It applies an engine rule (:mod:`recis.core.optim`) to the rows of embedding tables through a
:class:`~recis.core.optim.updater.SparseUpdater`: gradient accumulation, non-finite gradients,
per-table step counters. With tables sharded over ranks, it first sends the gradients recorded
for rows owned by other ranks to them (:func:`recis.distributed.exchange.push_gradients`). The
torch ``SparseOptimizer`` (a ``torch.optim.Optimizer``) and the JAX one (learning rates as optax
schedules) are thin adapters; both save :meth:`SparseOptimizerCore.state_dict`, so a run of one
resumes the other's optimizer state.

>>> import numpy as np
>>> from recis.core.optim import SGD
>>> from recis.core.table import EmbeddingTable
>>> table = EmbeddingTable("t", dim=2)
>>> core = SparseOptimizerCore(SGD(), [table])
>>> table.grads.add(table.find_or_insert(np.array([5])).rows, np.ones((1, 2), np.float32))
>>> core.step(lr=0.5)
>>> table.gather(np.array([0])).tolist(), core.state_dict()["tables"]["steps"]
([[-0.5, -0.5]], {'t': 1})
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from recis.core.optim.rule import Rule
from recis.core.optim.updater import SparseUpdater
from recis.core.table import EmbeddingTable
from recis.distributed.exchange import ShardedTable, push_gradients, shard_of
from recis.distributed.world import default_communicator


def world_shards(tables: Iterable[EmbeddingTable]) -> list[ShardedTable]:
    """This rank's shards of ``tables`` in the distributed world, or [] in one process."""
    comm = default_communicator()
    return [] if comm is None else [shard_of(table, comm) for table in tables]


class SparseOptimizerCore:
    """Updates tables with ``rule`` (see the module docstring).

    Args:
        rule: the engine's row-wise rule, e.g. ``Adam()``.
        tables: the tables to update (more with :meth:`add_table`).
        accumulation_steps: steps per update; gradients are summed and divided by it.
        on_nonfinite: ``"raise"`` (default) or ``"skip"`` rows with NaN/inf gradients.
        shards: returns this rank's shards of the tables when they are sharded over ranks, else
            [] (default: :func:`world_shards` of the tables).
        updater: the :class:`~recis.core.optim.updater.SparseUpdater` class applying the rule
            (a front end's subclass may update tables of its own kind).
    """

    def __init__(
        self,
        rule: Rule,
        tables: Iterable[EmbeddingTable] = (),
        accumulation_steps: int = 1,
        on_nonfinite: str = "raise",
        shards: Callable[[], list[ShardedTable]] | None = None,
        updater: type[SparseUpdater] = SparseUpdater,
    ) -> None:
        self.rule = rule
        self.updater = updater(rule, tables, accumulation_steps, on_nonfinite)
        self._shards = shards or (lambda: world_shards(self.tables))

    def add_table(self, table: EmbeddingTable) -> None:
        """Also update ``table``."""
        self.updater.add_table(table)

    @property
    def tables(self) -> list[EmbeddingTable]:
        return list(self.updater.tables.values())

    @property
    def accumulation_steps(self) -> int:
        """Steps per update."""
        return self.updater.accumulation_steps

    @accumulation_steps.setter
    def accumulation_steps(self, steps: int) -> None:
        if steps < 1:
            raise ValueError(f"gradient accumulation steps must be >= 1, got {steps}")
        self.updater.accumulation_steps = steps

    @property
    def count(self) -> int:
        """Updates applied so far (the argument of a learning-rate schedule)."""
        return self.updater.micro_step // self.updater.accumulation_steps

    @property
    def at_boundary(self) -> bool:
        """Whether the last step ended an accumulation (no gradients are being accumulated)."""
        return self.updater.micro_step % self.updater.accumulation_steps == 0

    def step(self, lr: float) -> None:
        """Count a step; at each accumulation boundary update the rows that got gradients.

        With sharded tables this is a collective (every rank calls it at every step).
        """
        self.push_gradients()
        self.updater.step(lr=lr)

    def skip_step(self) -> None:
        """Count a step like :meth:`step` but drop the gradients instead of applying them
        (e.g. after an fp16 overflow)."""
        self.push_gradients()
        self.updater.micro_step += 1
        self.updater.zero_grad()

    def push_gradients(self) -> None:
        """Send the gradients recorded for rows owned by other ranks to their owners, where they
        join the tables' gradient buffers (a collective with sharded tables; else nothing)."""
        shards = self._shards()
        if shards:
            self.updater.note_updated_elsewhere(push_gradients(shards))

    def local_finite_flags(self) -> list:
        """Per table, a 0-d boolean engine array on the table's device telling whether every
        gradient this rank holds for its rows is finite (after receiving the other ranks'
        gradients of its rows); nothing waits for a GPU until they are read."""
        self.push_gradients()
        return [table.grads.finite_flag() for table in self.tables]

    def grads_finite(self) -> bool:
        """Whether every gradient received since the last update is finite (on every rank, when
        the tables are sharded)."""
        finite = all(bool(flag) for flag in self.local_finite_flags())
        shards = self._shards()
        if shards:
            flag = np.array([int(finite)], np.int64)
            finite = bool(shards[0].comm.all_reduce(flag, "min", "all-reduce of finiteness")[0])
        return finite

    def unscale_grads(self, scale: float) -> None:
        """Divide the gradients received so far by ``scale`` (fp16 loss scaling)."""
        self.push_gradients()
        for table in self.tables:
            table.grads.scale(1.0 / scale)

    def zero_grad(self) -> None:
        """Drop the gradients collected since the last update (and those owed to other ranks)."""
        for shard in self._shards():
            shard.pending.clear()
        self.updater.zero_grad()

    @property
    def table_steps(self) -> dict[str, int]:
        """Updates applied so far, per physical table."""
        return dict(self.updater.steps)

    @property
    def skipped_rows(self) -> dict[str, int]:
        """Rows skipped for NaN/inf gradients, per table (``on_nonfinite="skip"``)."""
        return dict(self.updater.skipped_rows)

    def state_dict(self) -> dict:
        """Rule name and per-table counters (rows and slots live with the tables)."""
        return {"rule": type(self.rule).__name__, "tables": self.updater.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`."""
        if state["rule"] != type(self.rule).__name__:
            raise ValueError(
                f"state is for {state['rule']}, this optimizer uses {type(self.rule).__name__}"
            )
        self.updater.load_state_dict(state["tables"])

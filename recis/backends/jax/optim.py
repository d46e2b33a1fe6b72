"""``SparseOptimizer``: applies an engine rule to the rows of embedding tables, for JAX.

The rules (:mod:`recis.core.optim`, re-exported here as ``rules``) are those of the torch
backend. The learning rate is a float or an optax-style schedule: a callable of the number of
updates applied so far. In place of a rule and a learning rate, the optimizer also takes an
optax transformation over rows (:mod:`recis.backends.jax.sparse_optax`): optax's own
(``optax.adagrad(0.05)``), RecIS's rules as transformations, and chains of them with clipping
or schedules. When an embedder's tables are sharded over ranks,
:meth:`SparseOptimizer.step` is a collective: it first sends the gradients recorded for rows that
other ranks own to them.

>>> import numpy as np
>>> from recis.backends.jax import Embedder, EmbeddingOption
>>> embedder = Embedder({"f": EmbeddingOption(embedding_dim=2, shared_name="f")})
>>> schedule = lambda count: 0.5 / (count + 1)
>>> optimizer = SparseOptimizer(embedder, rules.SGD(), learning_rate=schedule)
>>> for _ in range(2):
...     out, context = embedder.lookup({"f": np.array([[4, 4]])})
...     embedder.apply_gradients(context, {"f": np.ones((1, 2), np.float32)})
...     optimizer.step()
>>> embedder.lookup({"f": np.array([[4]])}, train=False)[0]["f"].tolist()  # -2·0.5 - 2·0.25
[[-1.5, -1.5]]
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import optax

from recis.backends.jax.device_tables import DeviceShardedTable, DeviceShardedUpdater
from recis.backends.jax.embedding import Embedder
from recis.backends.jax.sparse_optax import RowTransformation
from recis.core import optim as rules
from recis.core.optim.rule import Rule
from recis.core.table import EmbeddingTable
from recis.core.threads import beside_framework
from recis.distributed.exchange import ShardedTable
from recis.embedding.sparse_optimizer import SparseOptimizerCore

__all__ = ["SparseOptimizer", "rules"]


class SparseOptimizer:
    """Updates ``tables`` with ``rule`` at each :meth:`step`, through the engine's
    :class:`~recis.embedding.sparse_optimizer.SparseOptimizerCore`.

    Args:
        tables: an :class:`~recis.backends.jax.Embedder`, a sparse layer, an
            ``EmbeddingTable`` (or a table sharded over devices), or a list of them.
        rule: the engine's row-wise rule, e.g. ``rules.Adam()``, or an optax transformation
            over rows, e.g. ``optax.chain(optax.clip_by_global_norm(1.0), sparse_optax.adam(
            1e-3))``, which holds its own learning rate.
        learning_rate: for a rule, a float or a schedule ``count -> lr`` (e.g. an optax
            schedule).
        accumulation_steps: steps per update; gradients are summed and divided by it.
        on_nonfinite: ``"raise"`` (default) or ``"skip"`` rows with NaN/inf gradients.
    """

    def __init__(
        self,
        tables,
        rule: Rule | optax.GradientTransformation,
        learning_rate: float | Callable[[int], float] | None = None,
        *,
        accumulation_steps: int = 1,
        on_nonfinite: str = "raise",
    ) -> None:
        rule, learning_rate = _rule_and_rate(rule, learning_rate)
        self.rule = rule
        self.learning_rate = learning_rate
        self._embedders = _embedders(tables)
        self.core = SparseOptimizerCore(
            rule, _tables(tables), accumulation_steps, on_nonfinite, shards=self._shards,
            updater=DeviceShardedUpdater,
        )  # fmt: skip

    @property
    def accumulation_steps(self) -> int:
        """Steps per update."""
        return self.core.accumulation_steps

    @property
    def count(self) -> int:
        """Updates applied so far (the argument of a learning-rate schedule)."""
        return self.core.count

    def current_learning_rate(self) -> float:
        """The learning rate of the next update."""
        if callable(self.learning_rate):
            return float(self.learning_rate(self.count))
        return float(self.learning_rate)

    @beside_framework
    def step(self) -> None:
        """Count a step; at each accumulation boundary update the rows that got gradients.

        With sharded tables this is a collective (every rank calls it at every step): the
        gradients of rows owned by other ranks go to them first. Raises
        :class:`~recis.backends.jax.misuse.UnappliedGradientsError` if an embedder's last
        training lookup still waits for its gradients.
        """
        for embedder in self._embedders:
            embedder.check_applied("the sparse optimizer's step")
        self.core.step(lr=self.current_learning_rate())

    def push_gradients(self) -> None:
        """Send the gradients recorded for rows owned by other ranks to their owners (a
        collective with sharded tables; else nothing)."""
        self.core.push_gradients()

    def gradient_sq_norm(self) -> float:
        """The squared L2 norm of the gradients received since the last update, each row's
        summed first (as the update will see them); one process."""
        total = 0.0
        for table in self.core.tables:
            if table.grads:
                grads = table.grads.summed(self.accumulation_steps)[1]
                total += float((grads.astype(np.float64) ** 2).sum())
        return total

    def scale_gradients(self, factor: float) -> None:
        """Multiply the gradients received since the last update by ``factor``."""
        if factor != 1.0:
            for table in self.core.tables:
                table.grads.scale(factor)

    def zero_grad(self) -> None:
        """Drop the gradients collected since the last update."""
        self.core.zero_grad()

    def _shards(self) -> list[ShardedTable]:
        return [s for embedder in self._embedders for s in embedder.shards or []]

    @property
    def skipped_rows(self) -> dict[str, int]:
        """Rows skipped for NaN/inf gradients, per table (``on_nonfinite="skip"``)."""
        return self.core.skipped_rows

    def state_dict(self) -> dict:
        """Rule name and per-table counters (rows and slots live with the tables)."""
        return self.core.state_dict()

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`."""
        self.core.load_state_dict(state)


def _rule_and_rate(rule, learning_rate) -> tuple[Rule, float | Callable[[int], float]]:
    """The engine rule and learning rate of the arguments: an optax transformation becomes a
    :class:`~recis.backends.jax.sparse_optax.RowTransformation` (its rate unused)."""
    if isinstance(rule, Rule):
        if learning_rate is None:
            raise TypeError(
                f"SparseOptimizer: the rule {type(rule).__name__} needs a learning_rate"
            )
        if not callable(learning_rate) and learning_rate < 0:
            raise ValueError(f"learning_rate must be >= 0, got {learning_rate}")
        return rule, learning_rate
    if isinstance(rule, optax.GradientTransformation):
        if learning_rate is not None:
            raise TypeError(
                "SparseOptimizer: an optax transformation holds its own learning rate; pass "
                "it alone, e.g. SparseOptimizer(tables, optax.adagrad(0.05))"
            )
        return RowTransformation(rule), 0.0
    raise TypeError(
        f"SparseOptimizer: expected a rule of recis.backends.jax.rules (e.g. rules.Adagrad()) "
        f"or an optax transformation (e.g. optax.adagrad(0.05)), got {type(rule).__name__}"
    )


def _embedders(source) -> list[Embedder]:
    """The Embedders among ``source`` (see :func:`_tables`), whose tables may be sharded."""
    if isinstance(source, Embedder):
        return [source]
    if hasattr(source, "embedder"):
        return [source.embedder]
    if isinstance(source, list | tuple):
        return [embedder for item in source for embedder in _embedders(item)]
    return []


def _tables(source) -> list[EmbeddingTable]:
    """The engine tables of an Embedder, a sparse layer, a table, or a list of them."""
    if isinstance(source, EmbeddingTable | DeviceShardedTable):
        return [source]
    if hasattr(source, "tables"):
        return list(source.tables.values())
    if isinstance(source, list | tuple):
        return [table for item in source for table in _tables(item)]
    raise TypeError(
        f"tables: expected an Embedder, a sparse layer or EmbeddingTables, got "
        f"{type(source).__name__}"
    )

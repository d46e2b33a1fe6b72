"""Sparse optimizers as optax gradient transformations over the rows an update touches.

A sparse update gathers the rows that received gradients, ``[n, dim]``, with their optimizer
state, and writes both back. Seen from optax, those rows are the ``params`` of a
``GradientTransformation``: ``init(rows)`` builds its state, ``update(grads, state, rows)``
returns the updates and the new state. So any optax transformation is a sparse rule
(:class:`RowTransformation` adapts it for :class:`~recis.backends.jax.SparseOptimizer`):
``optax.chain``, ``optax.clip_by_global_norm``, optax schedules and optax's own optimizers
(``optax.adagrad``, ``optax.adam``...) compose as they do for dense parameters.

RecIS's rules are transformations too: :func:`sgd`, :func:`adagrad`, :func:`rowwise_adagrad`,
:func:`adam`, :func:`adamw`, :func:`adamw_tf` and :func:`ftrl` wrap the engine rules
(:mod:`recis.core.optim`), whose math is written once: the transformation computes their rows
and slots bit for bit (inside ``jit``, through a host callback, with a scheduled learning rate
as float32). The math is not re-traced in JAX on purpose: XLA turns a division by a constant
into a multiplication by its reciprocal and sums rows in its own order, so a traced copy
would differ in the last bit. Their state keeps the rows they computed (:class:`NewRows`), so
that the sparse optimizer writes exactly those when nothing after the rule changed the updates
(``rows + (new - rows)`` may round differently from ``new``).

**Lazy updates.** Rows without a gradient are not touched, as with the engine rules. State that
is one value per table (a transformation's step ``count``) is rebuilt at each update from the
table's update count; other state of the whole table is that of ``init``: transformations that
carry such state from step to step (``optax.MultiSteps``, ``reduce_on_plateau``) are not
row-wise.

>>> import numpy as np, optax
>>> tx = optax.chain(optax.clip_by_global_norm(1.0), adam(0.1))
>>> rows = np.zeros((2, 2), np.float32)
>>> updates, state = tx.update(np.full((2, 2), 3.0, np.float32), tx.init(rows), rows)
>>> print(np.asarray(updates).round(4))  # Adam's first step: -lr·sign(g)
[[-0.1 -0.1]
 [-0.1 -0.1]]
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from recis.core import arrays as interop
from recis.core import optim as rules
from recis.core.optim.rule import Rule, SlotSpec

Schedule = float | Callable[[Any], Any]


@jax.tree_util.register_pytree_node_class
class NewRows:
    """The rows a RecIS rule computed in its last update (one leaf, ``value``)."""

    def __init__(self, value) -> None:
        self.value = value

    def tree_flatten(self):
        return (self.value,), None

    @classmethod
    def tree_unflatten(cls, _, children) -> NewRows:
        return cls(*children)


class RuleState(NamedTuple):
    """State of a RecIS rule over ``n`` rows: updates so far, per-row ``slots`` (``[n, ...]``),
    and the rows the last update computed."""

    count: jax.Array
    slots: dict[str, jax.Array]
    rows: NewRows


def from_rule(rule: Rule, learning_rate: Schedule) -> optax.GradientTransformation:
    """The engine ``rule`` with ``learning_rate`` (a float or a schedule of the update count)
    as an optax transformation over rows (see the module docstring)."""

    def init(rows) -> RuleState:
        rows = jnp.asarray(rows)
        slots = {
            name: jnp.full((rows.shape[0], *spec.shape), spec.init, spec.dtype)
            for name, spec in rule.slots(rows.shape[1]).items()
        }
        return RuleState(jnp.zeros((), jnp.int32), slots, NewRows(rows))

    def update(grads, state: RuleState, rows=None):
        if rows is None:
            raise ValueError(f"{type(rule).__name__}: the update needs the rows (params)")
        rows, grads = jnp.asarray(rows), jnp.asarray(grads)
        lr = learning_rate(state.count) if callable(learning_rate) else learning_rate
        if any(isinstance(x, jax.core.Tracer) for x in (rows, grads, state.count, lr)):
            new_rows, slots = _traced_update(rule, rows, grads, state, lr)
        else:
            step, lr = int(state.count) + 1, float(lr)
            as_numpy = {name: np.asarray(slot) for name, slot in state.slots.items()}
            new_rows, slots = rule.update(np.asarray(rows), np.asarray(grads), as_numpy, step, lr)
            new_rows, slots = jnp.asarray(new_rows), jax.tree.map(jnp.asarray, slots)
        return new_rows - rows, RuleState(state.count + 1, slots, NewRows(new_rows))

    return optax.GradientTransformation(init, update)


def _traced_update(rule: Rule, rows, grads, state: RuleState, lr):
    """The rule's update inside a JAX transformation, as a host callback of the NumPy rule;
    a traced learning rate reaches it as float32."""
    constant_lr = None if isinstance(lr, jax.core.Tracer) else float(lr)

    def host(rows, grads, slots, count, traced_lr):
        rate = constant_lr if constant_lr is not None else float(traced_lr)
        slots = {name: np.asarray(slot) for name, slot in slots.items()}
        return rule.update(np.asarray(rows), np.asarray(grads), slots, int(count) + 1, rate)

    shapes = (jax.ShapeDtypeStruct(rows.shape, rows.dtype), jax.tree.map(
        lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype), state.slots
    ))  # fmt: skip
    lr_arg = jnp.asarray(lr if constant_lr is None else 0.0, jnp.float32)
    return jax.pure_callback(host, shapes, rows, grads, state.slots, state.count, lr_arg)


def sgd(learning_rate: Schedule, weight_decay: float = 0.0) -> optax.GradientTransformation:
    """:class:`~recis.core.optim.SGD` as a row transformation."""
    return from_rule(rules.SGD(weight_decay), learning_rate)


def adagrad(learning_rate: Schedule, **hyper) -> optax.GradientTransformation:
    """:class:`~recis.core.optim.Adagrad` (``initial_accumulator_value``, ``eps``,
    ``weight_decay``, ``lr_decay``) as a row transformation."""
    return from_rule(rules.Adagrad(**hyper), learning_rate)


def rowwise_adagrad(learning_rate: Schedule, **hyper) -> optax.GradientTransformation:
    """:class:`~recis.core.optim.RowWiseAdagrad` as a row transformation."""
    return from_rule(rules.RowWiseAdagrad(**hyper), learning_rate)


def adam(learning_rate: Schedule, **hyper) -> optax.GradientTransformation:
    """:class:`~recis.core.optim.Adam` (``beta1``, ``beta2``, ``eps``, ``weight_decay``,
    ``amsgrad``) as a row transformation."""
    return from_rule(rules.Adam(**hyper), learning_rate)


def adamw(learning_rate: Schedule, **hyper) -> optax.GradientTransformation:
    """:class:`~recis.core.optim.AdamW` as a row transformation."""
    return from_rule(rules.AdamW(**hyper), learning_rate)


def adamw_tf(learning_rate: Schedule, **hyper) -> optax.GradientTransformation:
    """RecIS's :class:`~recis.core.optim.AdamWTF` as a row transformation."""
    return from_rule(rules.AdamWTF(**hyper), learning_rate)


def ftrl(learning_rate: Schedule, **hyper) -> optax.GradientTransformation:
    """:class:`~recis.core.optim.Ftrl` (``learning_rate_power``, ``initial_accumulator_value``,
    ``l1``, ``l2``, ``beta``) as a row transformation."""
    return from_rule(rules.Ftrl(**hyper), learning_rate)


@dataclass(frozen=True)
class RowTransformation(Rule):
    """Any optax transformation ``tx`` over rows, as an engine :class:`~recis.core.optim.Rule`:
    its per-row state becomes the table's slots (named ``optax.<path>``, e.g.
    ``optax.0.sum_of_squares``); its other state is
    rebuilt at each update (module docstring), integer scalars as the table's update count.
    The ``lr`` given to :meth:`update` is not used: the transformation holds its own."""

    tx: optax.GradientTransformation

    def slots(self, dim: int) -> dict[str, SlotSpec]:
        return {name: spec for name, (_, spec) in _layout(self.tx, dim).per_row.items()}

    def _update(self, xp, params, grads, slots, step: int, lr: float):
        layout = _layout(self.tx, params.shape[1])
        rows, grads = _to_jax(params), _to_jax(grads)
        leaves, treedef = _flatten(self.tx.init(rows))
        for name, (index, _) in layout.per_row.items():
            leaves[index] = _to_jax(slots[name])
        for index in layout.counts:
            leaves[index] = jnp.asarray(step - 1, leaves[index].dtype)
        updates, state = self.tx.update(grads, jax.tree.unflatten(treedef, leaves), rows)
        new_leaves = _flatten(state)[0]
        new_rows = _exact_rows(rows, updates, new_leaves, layout.new_rows)
        new_slots = {name: new_leaves[i] for name, (i, _) in layout.per_row.items()}
        return _to_engine(new_rows, xp), {k: _to_engine(v, xp) for k, v in new_slots.items()}


class _Layout(NamedTuple):
    """Where a transformation's state leaves go: ``per_row`` slots (name -> leaf index and
    spec), integer scalar ``counts`` and the :class:`NewRows` leaves."""

    per_row: dict[str, tuple[int, SlotSpec]]
    counts: list[int]
    new_rows: list[int]


@functools.lru_cache(maxsize=64)
def _layout(tx: optax.GradientTransformation, dim: int) -> _Layout:
    """The :class:`_Layout` of ``tx``'s state over rows of width ``dim``, from its ``init`` of
    one and of two rows."""
    one, two = (_flatten(tx.init(jnp.zeros((n, dim), jnp.float32)))[0] for n in (1, 2))
    paths = jax.tree_util.tree_flatten_with_path(
        tx.init(jnp.zeros((2, dim), jnp.float32)), is_leaf=_is_new_rows
    )[0]
    per_row, counts, new_rows = {}, [], []
    for index, ((path, _), a, b) in enumerate(zip(paths, one, two, strict=True)):
        if _is_new_rows(b):
            new_rows.append(index)
        elif np.shape(a) == np.shape(b):
            if np.ndim(b) == 0 and jnp.issubdtype(b.dtype, jnp.integer):
                counts.append(index)
        elif np.shape(a)[:1] == (1,) and np.shape(b)[:1] == (2,):
            per_row[_slot_name(path)] = (index, _slot_spec(path, b))
        else:
            raise ValueError(f"optax state {jax.tree_util.keystr(path)}: not per row or per table")
    return _Layout(per_row, counts, new_rows)


def _slot_name(path) -> str:
    """``optax.`` and the leaf's path, e.g. ``optax.1.slots.exp_avg``."""
    parts = [getattr(key, "key", getattr(key, "name", getattr(key, "idx", key))) for key in path]
    return ".".join(["optax", *map(str, parts)])


def _slot_spec(path, leaf) -> SlotSpec:
    values = np.asarray(leaf)
    if values.size and not (values == values.flat[0]).all():
        raise ValueError(
            f"optax state {jax.tree_util.keystr(path)}: its initial value depends on the rows, "
            "which a sparse rule cannot give rows it has not updated yet"
        )
    return SlotSpec(values.shape[1:], values.dtype, float(values.flat[0]) if values.size else 0.0)


def _exact_rows(rows, updates, leaves, new_rows: list[int]):
    """``rows + updates``, or the rows a RecIS rule computed when ``updates`` are its own."""
    for index in new_rows:
        computed = leaves[index].value
        if bool(jnp.array_equal(computed - rows, updates)):
            return computed
    return optax.apply_updates(rows, updates)


def _flatten(state) -> tuple[list, Any]:
    return jax.tree.flatten(state, is_leaf=_is_new_rows)


def _is_new_rows(x) -> bool:
    return isinstance(x, NewRows)


def _to_jax(array):
    return jnp.asarray(array) if interop.namespace(array) is np else jax.dlpack.from_dlpack(array)


def _to_engine(array, xp):
    return np.asarray(array) if xp is np else xp.from_dlpack(array)

"""The contract every sparse optimizer rule follows: slot specs plus one pure row-wise update.

A rule is an immutable value holding hyper-parameters. It never holds training state: per-row
state lives in *slots* (arrays beside the embedding rows, owned by the caller), and the only
table-level state a rule sees is ``step``, the number of this update for the table (1 first).
The learning rate is passed to every call, so schedules can drive it.

The caller deduplicates ids, sums their gradients (dividing by the accumulation count), gathers
the touched rows and their slots, calls :meth:`Rule.update`, and scatters the results back. Rows
that have no gradient are not passed and so do not change (lazy updates).
"""

from __future__ import annotations

import abc
import math
from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Integral, Real
from types import ModuleType

import numpy as np

from recis.core import arrays as interop

FLOAT32 = np.dtype(np.float32)


@dataclass(frozen=True)
class SlotSpec:
    """One per-row optimizer state: ``shape`` per row (``()`` is one value per row), dtype, init.

    >>> SlotSpec((4,), np.float32, 0.0).shape
    (4,)
    """

    shape: tuple[int, ...]
    dtype: np.dtype
    init: float


class Rule(abc.ABC):
    """A sparse optimizer rule: :meth:`slots` declares its per-row state, :meth:`update` applies it.

    Subclasses are frozen dataclasses of hyper-parameters implementing :meth:`slots` and
    :meth:`_update`; the public :meth:`update` validates arguments first.
    """

    @abc.abstractmethod
    def slots(self, dim: int) -> dict[str, SlotSpec]:
        """Return the per-row state this rule needs for rows of width ``dim``, by stable name."""

    def init(self, num_rows: int, dim: int, xp: ModuleType = np) -> dict[str, np.ndarray]:
        """Allocate fresh slots for ``num_rows`` rows, each filled with its initial value.

        >>> from recis.core.optim import Adagrad
        >>> Adagrad(initial_accumulator_value=0.5).init(2, 3)["sum"].tolist()
        [[0.5, 0.5, 0.5], [0.5, 0.5, 0.5]]
        """
        result = {}
        for name, spec in self.slots(dim).items():
            result[name] = interop.empty((num_rows, *spec.shape), spec.dtype, xp)
            result[name][...] = spec.init
        return result

    def update(
        self,
        params: np.ndarray,
        grads: np.ndarray,
        slots: Mapping[str, np.ndarray],
        step: int,
        lr: float,
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Return ``(new_params, new_slots)`` for the rows that received a gradient.

        ``params`` and ``grads`` are float32 ``[n, D]`` (NumPy or CuPy); ``grads`` are already
        deduplicated per row. ``slots`` maps every name of :meth:`slots` to a float32
        ``[n, *shape]`` array. ``step`` (>= 1) counts this table's updates, this one included;
        ``lr`` (>= 0) is the learning rate for this update. Inputs are never modified; the math
        is float32. CuPy arrays run the rule's fused CUDA kernel
        (:mod:`recis.core.cuda.optim`), which gives the same values.
        """
        _check_rows(params, grads)
        _check_slots(slots, self.slots(params.shape[1]), params.shape[0])
        step, lr = _check_step(step), _check_lr(lr)
        xp = interop.namespace(params)
        if xp is not np:
            fused = _fused_update(self, params, grads, dict(slots), step, lr)
            if fused is not None:
                return fused
        return self._update(xp, params, grads, dict(slots), step, lr)

    @abc.abstractmethod
    def _update(self, xp, params, grads, slots, step: int, lr: float):
        """Apply the rule to validated arguments; ``xp`` is the array module of the arrays."""


def _fused_update(rule: Rule, params, grads, slots: dict, step: int, lr: float):
    from recis.core.cuda.optim import fused_update

    return fused_update(rule, params, grads, slots, step, lr)


def check_real(name: str, value, low: float, high: float = math.inf, *, high_open=False) -> float:
    """Return ``value`` as a float, raising if it is not a real number in ``[low, high]``.

    ``high_open`` excludes ``high`` itself.

    >>> check_real("eps", -1.0, 0.0)
    Traceback (most recent call last):
    ...
    ValueError: eps: expected a value in [0.0, inf], got -1.0
    """
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__}")
    value = float(value)
    too_high = value >= high if high_open else value > high
    if math.isnan(value) or value < low or too_high:
        bracket = ")" if high_open else "]"
        raise ValueError(f"{name}: expected a value in [{low}, {high}{bracket}, got {value}")
    return value


def check_bool(name: str, value) -> bool:
    """Return ``value`` if it is a bool, else raise ``TypeError`` naming ``name``."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected a bool, got {type(value).__name__}")
    return bool(value)


def _check_rows(params, grads) -> None:
    for name, array in (("params", params), ("grads", grads)):
        interop.namespace(array)
        if array.dtype != FLOAT32:
            raise TypeError(f"{name}: expected float32, got {array.dtype}")
    if params.ndim != 2 or params.shape[1] == 0:
        raise ValueError(f"params: expected a 2-d array [rows, dim >= 1], got {params.shape}")
    if grads.shape != params.shape:
        raise ValueError(f"grads: expected shape {params.shape} like params, got {grads.shape}")


def _check_slots(slots, specs: dict[str, SlotSpec], num_rows: int) -> None:
    if not isinstance(slots, Mapping) or set(slots) != set(specs):
        got = sorted(slots) if isinstance(slots, Mapping) else type(slots).__name__
        raise ValueError(f"slots: expected the names {sorted(specs)}, got {got}")
    for name, spec in specs.items():
        array = slots[name]
        interop.namespace(array)
        if array.dtype != spec.dtype or array.shape != (num_rows, *spec.shape):
            raise ValueError(
                f"slots[{name!r}]: expected {spec.dtype} of shape {(num_rows, *spec.shape)}, "
                f"got {array.dtype} of shape {array.shape}"
            )


def _check_step(step) -> int:
    if isinstance(step, bool) or not isinstance(step, Integral):
        raise TypeError(f"step: expected an int, got {type(step).__name__}")
    if step < 1:
        raise ValueError(f"step: expected >= 1 (the first update is step 1), got {step}")
    return int(step)


def _check_lr(lr) -> float:
    lr = check_real("lr", lr, 0.0)
    if math.isinf(lr):
        raise ValueError("lr: expected a finite value, got inf")
    return lr


def set_fields(rule: Rule, **values) -> None:
    """Store validated hyper-parameters on a frozen dataclass rule (from its ``__post_init__``)."""
    for name, value in values.items():
        object.__setattr__(rule, name, value)


def with_l2(grads, params, weight_decay: float):
    """Return ``grads + weight_decay * params`` (coupled L2), or ``grads`` itself when it is 0."""
    return grads + weight_decay * params if weight_decay else grads

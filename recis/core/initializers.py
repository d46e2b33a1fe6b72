"""Embedding row initializers whose values are a pure function of (seed, table, id).

A new row's initial value does not depend on the order in which ids first appear, on how a batch
is split, on sharding or on the world size: element ``j`` of the row of ``id`` in table ``table``
is computed from ``(seed, table_hash(table), id, j)`` by the counter-based generator specified in
:mod:`recis.core.kernels.random`. ``table`` is the logical table name, so merging tables into one
physical table leaves their initial values unchanged.

Every initializer is a frozen dataclass called as ``init(ids, dim, seed, table, out=None)``; it
returns ``out[len(ids), dim]`` (float32) and ``config()`` gives a JSON-able dict that
:func:`from_config` turns back into an equal initializer. CuPy ids give CuPy rows, filled by the
CUDA port of the generator (:mod:`recis.core.cuda.initializers`), equal to the CPU's.

>>> import numpy as np
>>> init = TruncNormalInitializer(std=0.01)
>>> rows = init(np.array([7, -1], dtype=np.int64), dim=4, seed=0, table="user_emb")
>>> rows.shape, rows.dtype
((2, 4), dtype('float32'))
>>> again = init(np.array([-1], dtype=np.int64), dim=4, seed=0, table="user_emb")
>>> np.array_equal(rows[1], again[0])
True
>>> from_config(init.config()) == init
True
"""

from __future__ import annotations

import abc
import dataclasses
import functools
import hashlib
import math
import numbers
import operator
from collections.abc import Mapping

import numpy as np

from recis.core import arrays as interop
from recis.core.kernels import random as kernels

DEFAULT_FAN_ROWS = 10240  # RecIS computes fans on one block of rows: [block_size, dim]
MAX_DIM = 2**32 - 1  # the generator's counter holds element indices below 2**32

_CONSTANT_GAINS = {
    "linear": 1.0,
    "conv1d": 1.0,
    "conv2d": 1.0,
    "conv3d": 1.0,
    "conv_transpose1d": 1.0,
    "conv_transpose2d": 1.0,
    "conv_transpose3d": 1.0,
    "sigmoid": 1.0,
    "tanh": 5.0 / 3,
    "relu": math.sqrt(2.0),
    "selu": 3.0 / 4,
}
NONLINEARITIES = frozenset((*_CONSTANT_GAINS, "leaky_relu"))
FAN_MODES = ("fan_in", "fan_out")


@functools.lru_cache(maxsize=1024)
def _streams(seed: int, names: tuple[str, ...]) -> np.ndarray:
    """The random stream of each table of ``names`` under ``seed`` (read-only, made once)."""
    streams = np.array([kernels.stream_reference(seed, table_hash(n)) for n in names], np.uint64)
    streams.flags.writeable = False
    return streams


def table_hash(name: str) -> int:
    """Stable 64-bit hash of a table name: BLAKE2b-64 of its UTF-8 bytes, read little-endian.

    >>> hex(table_hash("user_emb"))
    '0xaecb940990814e1a'
    """
    if not isinstance(name, str):
        raise TypeError(f"table: expected a str, got {type(name).__name__}")
    digest = hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """Recommended gain for a nonlinearity, by the same formulas as ``torch.nn.init``.

    ``param`` is the negative slope of ``"leaky_relu"`` (0.01 when None) and is otherwise ignored.

    >>> calculate_gain("leaky_relu", 0) == calculate_gain("relu") == 2**0.5
    True
    """
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else _real("calculate_gain", "param", param)
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity not in _CONSTANT_GAINS:
        raise ValueError(
            f"nonlinearity must be one of {sorted(NONLINEARITIES)}, got {nonlinearity!r}"
        )
    return _CONSTANT_GAINS[nonlinearity]


class Initializer(abc.ABC):
    """Base of all initializers: validates the call, then fills the rows."""

    def __call__(
        self,
        ids: np.ndarray,
        dim: int,
        seed: int,
        table,
        out: np.ndarray | None = None,
        tags: np.ndarray | None = None,
    ) -> np.ndarray:
        """Initial rows ``[len(ids), dim]`` (float32) of ``ids`` in ``table``, written to ``out``.

        ``ids`` is a 1-D int64 array (every int64 is a valid id), ``seed`` an int in
        [0, 2**64) and ``out``, when given, a C-contiguous float32 array of that shape. With
        ``tags`` (int64, one per id), ``table`` is a list of names and id ``i`` belongs to
        ``table[tags[i]]``: several tables are initialised in one call.

        CuPy ``ids`` (with CuPy ``tags`` and ``out``) are filled on the GPU. There the tags are
        not checked against the names, which would wait for the device: the row of an id whose
        tag names no table is NaN.
        """
        xp = self._namespace(ids)
        ids = self._check_ids(ids, xp)
        dim = self._check_dim(dim)
        seed = self._check_seed(seed)
        names = [table] if tags is None else list(table)
        streams = _streams(seed, tuple(names))
        if tags is None:
            tags, stride = np.zeros(1, np.int64), 0
        else:
            tags, stride = self._check_tags(tags, ids.shape[0], len(names), xp), 1
        out = self._check_out(out, (ids.shape[0], dim), xp)
        self._fill(kernels if xp is np else _cuda_kernels(), ids, (streams, tags, stride), out)
        return out

    def config(self) -> dict:
        """JSON-able description: ``{"type": class name, **fields}``."""
        return {"type": type(self).__name__, **dataclasses.asdict(self)}

    @abc.abstractmethod
    def _fill(self, kernels, ids: np.ndarray, tables: tuple, out) -> None:
        """Write the rows of ``ids`` into ``out`` with the fill functions of ``kernels`` (the
        CPU's or the GPU's, same signatures); ``tables`` = (streams, tags, tag_stride)."""

    def _namespace(self, ids):
        if isinstance(ids, np.ndarray):
            return np
        try:
            return interop.namespace(ids)
        except TypeError:
            raise TypeError(
                f"{self._name}: ids must be a NumPy array (or a CuPy array on the GPU), "
                f"got {type(ids).__name__}"
            ) from None

    def _check_ids(self, ids, xp=np) -> np.ndarray:
        if ids.dtype != np.int64:
            raise TypeError(f"{self._name}: ids must have dtype int64, got {ids.dtype}")
        if ids.ndim != 1:
            raise ValueError(f"{self._name}: ids must be 1-D, got shape {ids.shape}")
        return xp.ascontiguousarray(ids)

    def _check_tags(self, tags, count: int, num_tables: int, xp=np) -> np.ndarray:
        tags = xp.ascontiguousarray(xp.asarray(tags), np.int64)
        if tags.shape != (count,):
            raise ValueError(f"{self._name}: tags must have one entry per id ({count})")
        if xp is np and count and (tags.min() < 0 or tags.max() >= num_tables):
            raise ValueError(f"{self._name}: tags must index the {num_tables} table names")
        return tags

    def _check_dim(self, dim) -> int:
        dim = _integer(self._name, "dim", dim)
        if not 1 <= dim <= MAX_DIM:
            raise ValueError(f"{self._name}: dim must be in [1, {MAX_DIM}], got {dim}")
        return dim

    def _check_seed(self, seed) -> int:
        seed = _integer(self._name, "seed", seed)
        if not 0 <= seed < 2**64:
            raise ValueError(f"{self._name}: seed must be in [0, 2**64), got {seed}")
        return seed

    def _check_out(self, out, shape: tuple[int, int], xp=np) -> np.ndarray:
        if out is None:
            return interop.empty(shape, np.float32, xp)
        if not isinstance(out, xp.ndarray):
            kind = "a NumPy array" if xp is np else "a CuPy array, like ids"
            raise TypeError(f"{self._name}: out must be {kind}, got {type(out).__name__}")
        if out.dtype != np.float32:
            raise TypeError(f"{self._name}: out must have dtype float32, got {out.dtype}")
        if out.shape != shape:
            raise ValueError(f"{self._name}: out must have shape {shape}, got {out.shape}")
        if not (out.flags.c_contiguous and getattr(out.flags, "writeable", True)):
            raise ValueError(f"{self._name}: out must be C-contiguous and writeable")
        return out

    @property
    def _name(self) -> str:
        return type(self).__name__


@dataclasses.dataclass(frozen=True)
class ConstantInitializer(Initializer):
    """Every element is ``init_val``."""

    init_val: float = 0.0

    def __post_init__(self):
        _normalize_reals(self, "init_val")

    def _fill(self, kernels, ids, tables, out):
        kernels.fill_constant(self.init_val, out)


@dataclasses.dataclass(frozen=True)
class UniformInitializer(Initializer):
    """Uniform on [a, b) (b itself may appear after rounding to float32); needs a <= b."""

    a: float = 0.0
    b: float = 1.0

    def __post_init__(self):
        _normalize_reals(self, "a", "b")
        if self.a > self.b:
            raise ValueError(f"{self._name}: a must be <= b, got a={self.a}, b={self.b}")

    def _fill(self, kernels, ids, tables, out):
        kernels.fill_uniform(ids, *tables, self.a, self.b, out)


@dataclasses.dataclass(frozen=True)
class NormalInitializer(Initializer):
    """Normal with mean ``mean`` and standard deviation ``std`` >= 0."""

    mean: float = 0.0
    std: float = 1.0

    def __post_init__(self):
        _normalize_reals(self, "mean", "std")
        _check_non_negative(self, "std")

    def _fill(self, kernels, ids, tables, out):
        kernels.fill_normal(ids, *tables, self.mean, self.std, out)


@dataclasses.dataclass(frozen=True)
class TruncNormalInitializer(Initializer):
    """Normal(mean, std) restricted to the absolute bounds [a, b], as ``trunc_normal_``.

    Drawn by rejection; after 64 rejected draws an element is the last draw clipped to [a, b].
    """

    mean: float = 0.0
    std: float = 1.0
    a: float = -2.0
    b: float = 2.0

    def __post_init__(self):
        _normalize_reals(self, "mean", "std", "a", "b")
        _check_non_negative(self, "std")
        if not self.a < self.b:
            raise ValueError(f"{self._name}: a must be < b, got a={self.a}, b={self.b}")

    def _fill(self, kernels, ids, tables, out):
        kernels.fill_truncated_normal(ids, *tables, self.mean, self.std, self.a, self.b, out)


@dataclasses.dataclass(frozen=True)
class XavierUniformInitializer(Initializer):
    """Uniform on [-bound, bound), bound = gain·sqrt(6 / (fan_in + fan_out)).

    Fans are those of a ``[fan_rows, dim]`` weight: fan_in = dim, fan_out = fan_rows.

    >>> XavierUniformInitializer(fan_rows=1).bound(1) == 3**0.5
    True
    """

    gain: float = 1.0
    fan_rows: int = DEFAULT_FAN_ROWS

    def __post_init__(self):
        _normalize_xavier(self)

    def bound(self, dim: int) -> float:
        """Half-width of the uniform distribution for rows of width ``dim``."""
        return math.sqrt(3.0) * _xavier_std(self, dim)

    def _fill(self, kernels, ids, tables, out):
        bound = self.bound(out.shape[1])
        kernels.fill_uniform(ids, *tables, -bound, bound, out)


@dataclasses.dataclass(frozen=True)
class XavierNormalInitializer(Initializer):
    """Normal(0, std), std = gain·sqrt(2 / (fan_in + fan_out)), fans as for Xavier uniform.

    >>> XavierNormalInitializer(fan_rows=2).std(2) == 0.5**0.5
    True
    """

    gain: float = 1.0
    fan_rows: int = DEFAULT_FAN_ROWS

    def __post_init__(self):
        _normalize_xavier(self)

    def std(self, dim: int) -> float:
        """Standard deviation for rows of width ``dim``."""
        return _xavier_std(self, dim)

    def _fill(self, kernels, ids, tables, out):
        kernels.fill_normal(ids, *tables, 0.0, self.std(out.shape[1]), out)


@dataclasses.dataclass(frozen=True)
class KaimingUniformInitializer(Initializer):
    """Uniform on [-bound, bound), bound = sqrt(3)·gain / sqrt(fan).

    gain = ``calculate_gain(nonlinearity, a)``; fan is fan_in = dim or fan_out = fan_rows, by
    ``mode``.

    >>> KaimingUniformInitializer(nonlinearity="linear").bound(3) == 1.0
    True
    """

    a: float = 0.0
    mode: str = "fan_in"
    nonlinearity: str = "leaky_relu"
    fan_rows: int = DEFAULT_FAN_ROWS

    def __post_init__(self):
        _normalize_kaiming(self)

    def bound(self, dim: int) -> float:
        """Half-width of the uniform distribution for rows of width ``dim``."""
        return math.sqrt(3.0) * _kaiming_std(self, dim)

    def _fill(self, kernels, ids, tables, out):
        bound = self.bound(out.shape[1])
        kernels.fill_uniform(ids, *tables, -bound, bound, out)


@dataclasses.dataclass(frozen=True)
class KaimingNormalInitializer(Initializer):
    """Normal(0, std), std = gain / sqrt(fan), gain and fan as for Kaiming uniform.

    >>> KaimingNormalInitializer(nonlinearity="relu").std(2) == 1.0
    True
    """

    a: float = 0.0
    mode: str = "fan_in"
    nonlinearity: str = "leaky_relu"
    fan_rows: int = DEFAULT_FAN_ROWS

    def __post_init__(self):
        _normalize_kaiming(self)

    def std(self, dim: int) -> float:
        """Standard deviation for rows of width ``dim``."""
        return _kaiming_std(self, dim)

    def _fill(self, kernels, ids, tables, out):
        kernels.fill_normal(ids, *tables, 0.0, self.std(out.shape[1]), out)


INITIALIZERS = {
    cls.__name__: cls
    for cls in (
        ConstantInitializer,
        UniformInitializer,
        NormalInitializer,
        TruncNormalInitializer,
        XavierUniformInitializer,
        XavierNormalInitializer,
        KaimingUniformInitializer,
        KaimingNormalInitializer,
    )
}


def from_config(config: Mapping) -> Initializer:
    """Rebuild an initializer from its ``config()``.

    >>> from_config({"type": "NormalInitializer", "mean": 0.0, "std": 0.5})
    NormalInitializer(mean=0.0, std=0.5)
    """
    fields = dict(config)
    kind = fields.pop("type", None)
    if kind not in INITIALIZERS:
        raise ValueError(f"config: unknown initializer type {kind!r}")
    return INITIALIZERS[kind](**fields)


def _cuda_kernels():
    from recis.core.cuda import initializers

    return initializers


def _xavier_std(init, dim: int) -> float:
    fan_in = init._check_dim(dim)
    return init.gain * math.sqrt(2.0 / float(fan_in + init.fan_rows))


def _kaiming_std(init, dim: int) -> float:
    fan = init._check_dim(dim) if init.mode == "fan_in" else init.fan_rows
    return calculate_gain(init.nonlinearity, init.a) / math.sqrt(fan)


def _normalize_xavier(init) -> None:
    _normalize_reals(init, "gain")
    _check_non_negative(init, "gain")
    _normalize_fan_rows(init)


def _normalize_kaiming(init) -> None:
    _normalize_reals(init, "a")
    _check_choice(init, "mode", FAN_MODES)
    _check_choice(init, "nonlinearity", sorted(NONLINEARITIES))
    _normalize_fan_rows(init)


def _check_choice(init, name: str, choices) -> None:
    value = getattr(init, name)
    if not isinstance(value, str):
        raise TypeError(f"{init._name}: {name} must be a str, got {type(value).__name__}")
    if value not in choices:
        raise ValueError(f"{init._name}: {name} must be one of {list(choices)}, got {value!r}")


def _normalize_fan_rows(init) -> None:
    fan_rows = _integer(init._name, "fan_rows", init.fan_rows)
    if fan_rows < 1:
        raise ValueError(f"{init._name}: fan_rows must be >= 1, got {fan_rows}")
    object.__setattr__(init, "fan_rows", fan_rows)


def _normalize_reals(init, *names: str) -> None:
    """Store each named field as a finite Python float, so equal values give equal configs."""
    for name in names:
        object.__setattr__(init, name, _real(init._name, name, getattr(init, name)))


def _check_non_negative(init, name: str) -> None:
    if getattr(init, name) < 0:
        raise ValueError(f"{init._name}: {name} must be >= 0, got {getattr(init, name)}")


def _real(owner: str, name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{owner}: {name} must be finite, got {value}")
    return value


def _integer(owner: str, name: str, value) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{owner}: {name} must be an int, got bool")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{owner}: {name} must be an int, got {type(value).__name__}") from None

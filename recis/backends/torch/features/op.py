"""RecIS feature ops: each a torch ``nn.Module`` step of a :class:`Feature`.

Ops accept a dense ``torch.Tensor``, a :class:`RaggedTensor` (one or two
offset levels, optional per-value weight), a NumPy or CuPy array or an engine
:class:`~recis.core.ragged.Ragged`, and return the kind they were given; the work runs in the
engine (:mod:`recis.core.features`), on the CPU or, for CUDA tensors, on their GPU. Constructors
check their arguments and raise ``TypeError``/``ValueError`` naming the op.

>>> import torch
>>> Mod(10)(torch.tensor([17, -1]))
tensor([7, 5])
>>> Bucketize([18, 25])(torch.tensor([17.0, 18.0, 40.0]))
tensor([0, 1, 2])
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import torch
from torch import nn

from recis.backends.torch.features.columns import (
    engine_array,
    on_input_device,
    pad_info_of,
    split_ragged,
    split_values,
)
from recis.backends.torch.ragged import RaggedTensor
from recis.core import features as engine
from recis.core.arrays import export_like
from recis.core.features.bucketize import as_boundaries
from recis.core.features.hashing import check_hash_type
from recis.core.features.mod import check_mod_value
from recis.core.features.multi_hash import MULTIPLIERS, PRIME_SCALES, multi_hash_parameters
from recis.core.features.truncate import Truncation, check_truncate_options
from recis.core.ragged import Ragged


class _OP(nn.Module):
    """Base of the feature ops: a configuration (``_get_config``) and a hash of it."""

    def get_hash(self) -> int:
        """Signed 64-bit hash of the op's class and configuration (equal ops hash equal)."""
        config = f"{type(self).__name__}:{sorted(self._get_config().items())}"
        digest = hashlib.sha256(config.encode("utf-8")).digest()
        return int.from_bytes(digest[:8], byteorder="big", signed=True)

    def _get_config(self) -> dict:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return ", ".join(f"{key}={value!r}" for key, value in self._get_config().items())


class SelectField(_OP):
    """Select ``data[name]`` (or, with ``from_dict=False``, pass the input itself).

    ``dim`` fixes the last ``dense_shape`` entry of a selected ``RaggedTensor`` (on a shallow copy;
    the input is not modified). ``dtype`` is kept for RecIS compatibility and not enforced.
    """

    def __init__(self, name: str, dtype=torch.long, dim: int | None = None, from_dict=True):
        super().__init__()
        self._name, self._dtype, self._dim, self._from_dict = name, dtype, dim, from_dict

    @property
    def name(self) -> str:
        return self._name

    @property
    def from_dict(self) -> bool:
        return self._from_dict

    def forward(self, data):
        x = self._select(data)
        if self._dim and isinstance(x, RaggedTensor):
            x = x.clone()
            x.set_dim_by_rank(self._dim, -1)
        return x

    def _select(self, data):
        if not self._from_dict:
            return data
        if not isinstance(data, Mapping):
            raise TypeError(f"expected a dict of inputs, got {type(data).__name__}")
        if self._name not in data:
            raise KeyError(f"the input has no field {self._name!r}")
        return data[self._name]

    def _get_config(self) -> dict:
        dtype = str(self._dtype)
        return {"name": self._name, "dtype": dtype, "dim": self._dim, "from_dict": self._from_dict}


class SelectFields(_OP):
    """Apply several :class:`SelectField` ops and return their results as a list."""

    def __init__(self, input_list: list[SelectField]):
        super().__init__()
        self.input_list = list(input_list)

    def forward(self, data) -> list:
        return [select(data) for select in self.input_list]

    def _get_config(self) -> dict:
        return {"input_hashes": [select.get_hash() for select in self.input_list]}

    def extra_repr(self) -> str:
        return ", ".join(repr(select) for select in self.input_list)


class Mod(_OP):
    """int64 ids reinterpreted as uint64, modulo ``mod_value``; structure kept."""

    def __init__(self, mod_value: int):
        super().__init__()
        self.mod_value = check_mod_value(mod_value)

    @on_input_device
    def forward(self, x):
        column, back = split_values(x)
        return back(engine.mod(column, self.mod_value))

    def _get_config(self) -> dict:
        return {"mod": self.mod_value}


class Bucketize(_OP):
    """Bucket id (int64) = number of ``boundary`` values ≤ the value (upper bound).

    ``boundary`` (a sorted list or tensor) is also kept as the float32 tensor ``self.boundary``,
    as in RecIS; float16/float32 values are compared with it, other values with the boundaries in
    float64 (see :mod:`recis.core.features.bucketize`).
    """

    def __init__(self, boundary):
        super().__init__()
        if isinstance(boundary, torch.Tensor):
            boundary = boundary.tolist()
        self.boundaries = as_boundaries(boundary, "boundary")
        self.boundary = torch.tensor(self.boundaries, dtype=torch.float)

    @on_input_device
    def forward(self, x):
        column, back = split_values(x)
        return back(engine.bucketize(column, self.boundaries))

    def _get_config(self) -> dict:
        return {"boundary": self.boundaries.tolist()}


class Hash(_OP):
    """Hash strings to int64 with ``"farm"`` (Fingerprint64) or ``"murmur"`` (MurmurHash64A).

    The input is an int8/uint8 ragged tensor whose last offset level delimits strings; the result
    drops that level (and the last ``dense_shape`` entry). A ``RaggedTensor`` weight, if any, has
    one entry per string and is kept. A one-level input hashes to a dense [num_strings] tensor.
    """

    def __init__(self, hash_type: str):
        super().__init__()
        self.hash_type = check_hash_type(hash_type)

    @on_input_device
    def forward(self, x):
        strings, weights, back = hash_inputs(x)
        return back(engine.hash_column(strings, self.hash_type, weights))

    def _get_config(self) -> dict:
        return {"hash_type": self.hash_type}


def hash_inputs(x):
    """Engine strings, per-string weights, and the function giving a result back as ``x``'s kind."""
    strings, _ = split_ragged(x, with_weights=False)
    if not isinstance(x, RaggedTensor):
        return strings, None, lambda hashed: hashed
    weight = None if x.weight() is None else engine_array(x.weight(), "weight")

    def back(hashed):
        if not isinstance(hashed, Ragged):
            return export_like(hashed, x.values())
        return RaggedTensor.from_engine(hashed, x.dense_shape[:-1])

    return strings, weight, back


class IDMultiHash(_OP):
    """Hash int64 ids into ``len(num_buckets)`` (≤ 4) id spaces; a dict of results.

    ``{f"{prefix}_{k}": ids_k}`` with ``ids_k = ((id · m_k) mod p_k) mod num_buckets[k]``,
    ``m = (1, 3, 5, 7)``, ``p_k`` the largest prime ≤ ``(29, 47, 67, 83)[k] · num_buckets[k]``.
    """

    multi_muls = MULTIPLIERS
    multi_mods = PRIME_SCALES

    def __init__(self, num_buckets: list[int], prefix: str = "multi_hash"):
        super().__init__()
        _, primes, _ = multi_hash_parameters(num_buckets)
        self.num_buckets, self.prefix = [int(b) for b in num_buckets], prefix
        self.bucket_lens, self.multi_primes = len(self.num_buckets), primes.tolist()

    @on_input_device
    def forward(self, x) -> dict:
        column, back = split_values(x)
        return self.named([back(h) for h in engine.id_multi_hash(column, self.num_buckets)])

    def named(self, results: list) -> dict:
        """The per-bucket results keyed ``f"{prefix}_{k}"``."""
        return {f"{self.prefix}_{k}": result for k, result in enumerate(results)}

    def _get_config(self) -> dict:
        muls, mods = list(self.multi_muls), list(self.multi_mods)
        return {
            "num_buckets": self.num_buckets,
            "prefix": self.prefix,
            "multi_muls": muls,
            "multi_mods": mods,
        }


class FeatureCross(_OP):
    """Cross two int64 ragged inputs ``[x, y]`` row by row (see :mod:`recis.core.features.cross`).

    Per row, each side's ids are made distinct (first-occurrence order, weights summed); the
    output holds the hashed pairs (x-major) with weight ``w_x · w_y``. Row counts must match.
    A ``RaggedTensor`` result takes ``x``'s ``dense_shape`` with a free last entry.
    """

    @on_input_device
    def forward(self, data):
        x, y, back = cross_inputs(data)
        return back(engine.feature_cross(x, y))

    def _get_config(self) -> dict:
        return {}


def cross_inputs(data):
    """Engine ``x`` and ``y``, and the function giving a result back as ``x``'s kind."""
    if not isinstance(data, list | tuple) or len(data) != 2:
        raise ValueError("expected a list of two ragged inputs [x, y]")
    (x, back), (y, _) = split_ragged(data[0]), split_ragged(data[1])
    dense_shape = None
    if isinstance(data[0], RaggedTensor):
        dense_shape = (*data[0].dense_shape[:-1], -1)
    return x, y, lambda crossed: back(crossed, dense_shape)


class SequenceTruncate(_OP):
    """Truncate sequences to ``seq_len`` (see :mod:`recis.core.features.truncate`).

    ``n_dims=2`` keeps at most ``seq_len`` ids per row (of the innermost level: a two-level
    input becomes its inner lists, truncated, as in RecIS); ``n_dims=3`` keeps at most
    ``seq_len`` inner lists per sequence and pads with empty lists to exactly ``seq_len``.
    ``truncate_side`` ``"left"`` drops from the start. A ``RaggedTensor`` result has
    ``dense_shape[1] = seq_len`` and a ``pad_info``. Called on its own, ``check_length`` raises
    ``AssertionError`` when the input's ``shape[1]`` exceeds ``seq_len``, as RecIS's op does;
    inside a :class:`~recis.features.FeatureEngine` (RecIS's fused path) it truncates without
    checking. ``truncate=False`` only checks (when asked) and returns the input. ``dtype`` is
    kept for RecIS compatibility and not enforced.

    >>> from recis.ragged.tensor import RaggedTensor
    >>> x = RaggedTensor(torch.arange(5), torch.tensor([0, 3, 5]))
    >>> SequenceTruncate(2, check_length=False)(x).values().tolist()
    [1, 2, 3, 4]
    >>> SequenceTruncate(2)(x)
    Traceback (most recent call last):
    ...
    AssertionError: sequence length 3 is more than seq_len=2 (check_length=True)
    """

    def __init__(
        self,
        seq_len: int = 64,
        check_length: bool = True,
        truncate: bool = True,
        truncate_side: str = "left",
        n_dims: int = 2,
        dtype=torch.long,
    ):
        super().__init__()
        check_truncate_options(seq_len, truncate_side, n_dims)
        self.seq_len, self.check_length, self.truncate = int(seq_len), check_length, truncate
        self.truncate_side, self.n_dims, self.dtype = truncate_side, n_dims, dtype

    @on_input_device
    def forward(self, x):
        if self.check_length:
            self._check_length(x)
        if not self.truncate:
            return x
        column, back = self.inputs(x)
        truncated = engine.sequence_truncate(column, self.seq_len, self.truncate_side, self.n_dims)
        return back(truncated)

    def _check_length(self, x) -> None:
        """RecIS's check: the input's second dimension is at most ``seq_len``."""
        length = x.shape[1] if isinstance(x, RaggedTensor) else split_ragged(x)[0].max_length(0)
        if length > self.seq_len:
            raise AssertionError(
                f"sequence length {length} is more than seq_len={self.seq_len} (check_length=True)"
            )

    def inputs(self, x):
        """The engine column to truncate and the function giving a result back."""
        column, back = split_ragged(x)
        innermost = self.n_dims == 2 and len(column.offsets) > 1
        if innermost:
            column = Ragged(column.values, column.offsets[-1:], column.weights)
        if not isinstance(x, RaggedTensor):
            return column, lambda truncated: truncated.ragged
        dense_shape = [-1, self.seq_len] if innermost else list(x.dense_shape)
        dense_shape[1] = self.seq_len
        return column, lambda truncated: self._ragged_tensor(x, truncated, back, dense_shape)

    def _ragged_tensor(self, x, truncated: Truncation, back, dense_shape) -> RaggedTensor:
        result = back(truncated.ragged, dense_shape)
        like = x.values()
        left = self.truncate_side == "left"
        result.set_pad_info(pad_info_of(truncated.drop_nums, truncated.pad_nums, left, like))
        return result

    def _get_config(self) -> dict:
        return {
            "seq_len": self.seq_len,
            "check_length": self.check_length,
            "truncate": self.truncate,
            "truncate_side": self.truncate_side,
            "n_dims": self.n_dims,
            "dtype": str(self.dtype),
        }

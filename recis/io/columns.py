"""Arrow columns to engine arrays, as ``varlen_feature`` / ``fixedlen_feature`` declare them.

Layouts, for a leaf under ``d`` list levels (``list``, ``large_list``, ``fixed_size_list``):

- numeric, ``d = 0``: varlen gives a dense ``[n]`` array; fixedlen gives ``[n, 1]`` with nulls
  replaced by the default.
- numeric, ``d >= 1``: varlen gives a :class:`Ragged` with ``d`` offset levels; fixedlen
  (``d = 1``) gives ``[n, dim]``, with empty or null rows set to the default.
- ``struct<id, weight>`` inside ``d >= 1`` lists: a :class:`Ragged` of the ids whose float32
  ``weights`` are the second field.
- strings or binary (as a leaf or as the struct's id): hashed while reading into int64 ids
  (``hash_type`` ``"farm"`` or ``"murmur"``; with ``hash_bucket > 0`` the unsigned hash modulo the
  bucket, with ``hash_bucket == 0`` the hash with its sign bit cleared, as RecIS returns it; a
  bucket without a hash type is unused, as in RecIS, and logged once), or
  kept as int8 bytes (``trans_int8``) under one more offset level that marks string boundaries,
  or, for a scalar column, passed through as an object array.

A null list is an empty row; a null value inside a list (or in a varlen scalar column) is an
error. Floating values are cast to the dataset's ``dtype``; weights are float32.

>>> import pyarrow as pa
>>> spec = ColumnSpec.varlen("ids")
>>> convert_column(spec, pa.array([[1, 2], None, [3]]), np.float32).offsets
(array([0, 2, 2, 3]),)
>>> spec = ColumnSpec.fixedlen("x", [0.5, 0.5])
>>> convert_column(spec, pa.array([[1.0, 2.0], []]), np.float32).tolist()
[[1.0, 2.0], [0.5, 0.5]]
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
import pyarrow as pa

from recis.core.arrays import empty
from recis.core.ragged import Ragged
from recis.core.string_hash import HASH_TYPES, clear_sign_bit, hash_strings
from recis.io.errors import ColumnError
from recis.io.row_ops import Column

logger = logging.getLogger("recis.io")


@dataclass(frozen=True)
class ColumnSpec:
    """A declared column: varlen (optionally hashed or as int8 bytes) or fixedlen (``default``)."""

    name: str
    hash_type: str | None = None
    hash_bucket: int = 0
    trans_int8: bool = False
    default: tuple | None = None

    @classmethod
    def varlen(cls, name: str, hash_type=None, hash_bucket=0, trans_int8=False) -> ColumnSpec:
        """Validate a ``varlen_feature`` declaration; raises ``ValueError`` naming the problem."""
        _check_name(name)
        if hash_type is not None and hash_type not in HASH_TYPES:
            raise ValueError(f"{name}: hash_type must be one of {HASH_TYPES}, got {hash_type!r}")
        if isinstance(hash_bucket, bool) or not isinstance(hash_bucket, Integral):
            raise ValueError(f"{name}: hash_bucket must be an integer, got {hash_bucket!r}")
        if hash_bucket < 0:
            raise ValueError(f"{name}: hash_bucket must be >= 0, got {hash_bucket}")
        if hash_bucket and hash_type is None:
            logger.info("%s: hash_bucket=%d is unused without a hash_type", name, hash_bucket)
            hash_bucket = 0
        if hash_type is not None and trans_int8:
            raise ValueError(f"{name}: choose either hash_type or trans_int8")
        return cls(name, hash_type, int(hash_bucket), bool(trans_int8))

    @classmethod
    def fixedlen(cls, name: str, default_value) -> ColumnSpec:
        """Validate a ``fixedlen_feature`` declaration (a number or a list of numbers)."""
        _check_name(name)
        values = default_value if isinstance(default_value, list | tuple) else [default_value]
        values = [v.item() if isinstance(v, np.generic) else v for v in values]
        if not values or not all(isinstance(v, Real) for v in values):
            raise ValueError(f"{name}: default_value must be a number or a list of numbers")
        return cls(name, default=tuple(values))

    @property
    def is_fixedlen(self) -> bool:
        return self.default is not None


def check_type(spec: ColumnSpec, type_: pa.DataType) -> None:
    """Raise :class:`ColumnError` if a column of arrow type ``type_`` cannot be read as declared."""
    depth, leaf = _peel(type_)
    if spec.is_fixedlen:
        _check_fixedlen(spec, type_, depth, leaf)
    elif pa.types.is_struct(leaf):
        _check_weighted(spec, type_, depth, leaf)
    else:
        _check_leaf(spec, type_, depth, leaf)


def type_signature(type_: pa.DataType) -> str:
    """A name for ``type_`` that ignores field names and offset widths (list = large_list).

    >>> type_signature(pa.large_list(pa.field("element", pa.large_string())))
    'list<string>'
    """
    if pa.types.is_dictionary(type_):
        return type_signature(type_.value_type)
    if _is_list(type_):
        return f"list<{type_signature(type_.value_type)}>"
    if pa.types.is_struct(type_):
        return f"struct<{','.join(type_signature(field.type) for field in type_)}>"
    if pa.types.is_large_string(type_):
        return "string"
    if pa.types.is_large_binary(type_):
        return "binary"
    return str(type_)


def convert_table(specs, table: pa.Table | pa.RecordBatch, float_dtype) -> dict[str, Column]:
    """Convert every declared column of ``table`` (see :func:`convert_column`)."""
    return {spec.name: convert_column(spec, table.column(spec.name), float_dtype) for spec in specs}


def convert_column(spec: ColumnSpec, array, float_dtype) -> Column:
    """Convert one arrow column (checked by :func:`check_type`) to a dense array or Ragged."""
    array = _plain(array)
    offsets = []
    while _is_list(array.type):
        level_offsets, array = _split_list(array)
        offsets.append(level_offsets)
        array = _plain(array)
    if spec.is_fixedlen:
        return _fixedlen(spec, offsets, array, float_dtype)
    if pa.types.is_struct(array.type):
        return _weighted(spec, offsets, array, float_dtype)
    values, string_offsets = _leaf(spec, array, float_dtype, inside_list=bool(offsets))
    offsets += string_offsets
    return Ragged(values, tuple(offsets)) if offsets else values


def _check_name(name) -> None:
    if not isinstance(name, str) or not name:
        raise ValueError(f"column name must be a non-empty string, got {name!r}")


def _check_fixedlen(spec: ColumnSpec, type_, depth: int, leaf) -> None:
    dim = len(spec.default)
    if not _is_numeric(leaf) or depth > 1:
        raise ColumnError(
            spec.name, f"fixedlen_feature needs numbers or a list of numbers, got {type_}"
        )
    if depth == 0 and dim != 1:
        raise ColumnError(spec.name, f"a scalar column has dim 1, but default_value has {dim}")
    if pa.types.is_fixed_size_list(type_) and type_.list_size != dim:
        raise ColumnError(spec.name, f"{type_} does not match default_value of dim {dim}")


def _check_weighted(spec: ColumnSpec, type_, depth: int, leaf) -> None:
    if depth == 0 or leaf.num_fields != 2:
        raise ColumnError(spec.name, f"weighted ids need list<struct<id, weight>>, got {type_}")
    if spec.trans_int8:
        raise ColumnError(spec.name, "trans_int8 does not apply to weighted ids")
    if not _is_numeric(leaf.field(1).type):
        raise ColumnError(spec.name, f"the weight field must be numeric, got {type_}")
    _check_leaf(spec, type_, depth, leaf.field(0).type)


def _check_leaf(spec: ColumnSpec, type_, depth: int, leaf) -> None:
    if _is_string(leaf):
        if depth and not (spec.hash_type or spec.trans_int8):
            raise ColumnError(spec.name, f"{type_} needs hash_type or trans_int8")
    elif _is_numeric(leaf):
        if spec.hash_type or spec.trans_int8:
            raise ColumnError(spec.name, f"hash_type and trans_int8 apply to strings, got {type_}")
    else:
        raise ColumnError(spec.name, f"unsupported type {type_}")


def _fixedlen(spec: ColumnSpec, offsets: list, array, float_dtype) -> np.ndarray:
    if not offsets:
        values, _ = _leaf(spec, array.fill_null(spec.default[0]), float_dtype, inside_list=False)
        return values.reshape(-1, 1)
    dim = len(spec.default)
    values, _ = _leaf(spec, array, float_dtype, inside_list=True)
    lengths = np.diff(offsets[0])
    wrong = np.flatnonzero((lengths != 0) & (lengths != dim))
    if len(wrong):
        row = wrong[0]
        raise ColumnError(spec.name, f"row {row} has {lengths[row]} values, expected {dim} or none")
    full = lengths == dim
    if full.all():
        return values.reshape(-1, dim)
    dense = empty((len(lengths), dim), values.dtype)
    dense[...] = np.asarray(spec.default).astype(values.dtype)
    dense[full] = values.reshape(-1, dim)
    return dense


def _weighted(spec: ColumnSpec, offsets: list, array, float_dtype) -> Ragged:
    if array.null_count:
        raise ColumnError(spec.name, "null values inside lists")
    ids_array, weights_array = array.flatten()
    ids, _ = _leaf(spec, ids_array, float_dtype, inside_list=True)
    weights, _ = _leaf(spec, weights_array, np.float32, inside_list=True)
    return Ragged(ids, tuple(offsets), weights.astype(np.float32, copy=False))


def _leaf(spec: ColumnSpec, array, float_dtype, inside_list: bool):
    """The values of a leaf array and, for int8 strings, the string offsets as one more level."""
    if array.null_count:
        raise ColumnError(spec.name, "null values inside lists" if inside_list else "null values")
    if _is_string(array.type):
        return _strings(spec, array)
    values = array.to_numpy(zero_copy_only=False)
    if values.dtype.kind == "f":
        values = values.astype(float_dtype, copy=False)
    return values, []


def _strings(spec: ColumnSpec, array):
    if not (spec.hash_type or spec.trans_int8):
        return array.to_numpy(zero_copy_only=False), []
    data, offsets = _string_buffers(array)
    if spec.trans_int8:
        return data.view(np.int8), [offsets]
    hashes = hash_strings(data, offsets, spec.hash_type, spec.hash_bucket)
    return (hashes if spec.hash_bucket else clear_sign_bit(hashes)), []


def _string_buffers(array) -> tuple[np.ndarray, np.ndarray]:
    """The bytes of all strings and their int64 offsets (from 0), shared with arrow's buffers."""
    large = pa.types.is_large_string(array.type) or pa.types.is_large_binary(array.type)
    offset_type = np.dtype(np.int64 if large else np.int32)
    _, offsets_buffer, data_buffer = array.buffers()
    raw = np.frombuffer(
        offsets_buffer, offset_type, len(array) + 1, array.offset * offset_type.itemsize
    )
    start, stop = int(raw[0]), int(raw[-1])
    data = np.frombuffer(data_buffer, np.uint8, stop - start, start) if stop > start else None
    return (np.zeros(0, np.uint8) if data is None else data), _rebased(raw)


def _split_list(array) -> tuple[np.ndarray, pa.Array]:
    """The int64 offsets (from 0) of a list array and its child values, null lists made empty."""
    if pa.types.is_fixed_size_list(array.type):
        return _split_fixed_size_list(array)
    raw = array.offsets.to_numpy()
    if array.null_count == 0:
        start = int(raw[0])
        return _rebased(raw), array.values.slice(start, int(raw[-1]) - start)
    lengths = np.diff(raw).astype(np.int64)
    lengths[~_validity(array)] = 0
    return _offsets_from_lengths(lengths), array.flatten()


def _split_fixed_size_list(array) -> tuple[np.ndarray, pa.Array]:
    size = array.type.list_size
    values = array.values.slice(array.offset * size, len(array) * size)
    lengths = np.full(len(array), size, np.int64)
    if array.null_count:
        valid = _validity(array)
        lengths[~valid] = 0
        values = values.filter(pa.array(np.repeat(valid, size)))
    return _offsets_from_lengths(lengths), values


def _rebased(raw: np.ndarray) -> np.ndarray:
    offsets = empty(len(raw), np.int64)
    np.subtract(raw, raw[0], out=offsets)
    return offsets


def _offsets_from_lengths(lengths: np.ndarray) -> np.ndarray:
    offsets = empty(len(lengths) + 1, np.int64)
    offsets[0] = 0
    np.cumsum(lengths, out=offsets[1:])
    return offsets


def _validity(array) -> np.ndarray:
    return array.is_valid().to_numpy(zero_copy_only=False)


def _plain(array) -> pa.Array:
    if isinstance(array, pa.ChunkedArray):
        array = array.chunk(0) if array.num_chunks == 1 else array.combine_chunks()
    return array.dictionary_decode() if pa.types.is_dictionary(array.type) else array


def _peel(type_) -> tuple[int, pa.DataType]:
    depth = 0
    while pa.types.is_dictionary(type_) or _is_list(type_):
        depth += _is_list(type_)
        type_ = type_.value_type
    return depth, type_


def _is_list(type_) -> bool:
    types = pa.types
    return types.is_list(type_) or types.is_large_list(type_) or types.is_fixed_size_list(type_)


def _is_numeric(type_) -> bool:
    return pa.types.is_integer(type_) or pa.types.is_floating(type_) or pa.types.is_boolean(type_)


def _is_string(type_) -> bool:
    types = pa.types
    return any(
        check(type_)
        for check in (
            types.is_string,
            types.is_large_string,
            types.is_binary,
            types.is_large_binary,
        )
    )

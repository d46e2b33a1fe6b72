"""Backend-neutral planning of an embedding layer: which features share a physical table, and
the engine form of a feature's ids.

Front ends (torch, JAX) describe each feature by an option object with ``shared_name``,
``coalesced_info()`` (storage properties: features that agree share a physical table, unless
one's logical table is trained and the other's is not) and
``runtime_info()`` (per-request properties: features that agree are combined in one call).
Requests hold NumPy arrays, or CuPy arrays for inputs on the GPU; their work stays on the device.

>>> import numpy as np
>>> a = Request(np.array([1, 2]), np.array([0, 1, 2]), None, (2,), dense=True)
>>> b = Request(np.array([3]), np.array([0, 1]), np.array([0.5], np.float32), (1,), dense=False)
>>> merged = merge_requests([a, b])
>>> merged.offsets.tolist(), merged.weights.tolist()
([0, 1, 2, 3], [1.0, 1.0, 0.5])
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass

import numpy as np

from recis.core import arrays as interop
from recis.core.arrays import array_module
from recis.core.padded import kept_ids
from recis.core.ragged import Ragged


@dataclass
class Request:
    """A feature's ids in engine form: flat ``ids``, per-segment ``offsets``, ``weights``.

    ``prefix`` is the output shape before the embedding dim; ``dense`` tells whether the input
    was a dense ``[..., k]`` array.
    """

    ids: np.ndarray
    offsets: np.ndarray
    weights: np.ndarray | None
    prefix: tuple[int, ...]
    dense: bool

    @property
    def num_segments(self) -> int:
        return len(self.offsets) - 1


def dense_request(ids: np.ndarray, weights: np.ndarray | None = None) -> Request:
    """A request for dense ids ``[..., k]`` (k ids per segment; 1-D means one id each), NumPy or
    CuPy (``weights`` on the same device)."""
    xp = array_module(ids)
    ids2 = ids.reshape(-1, 1) if ids.ndim == 1 else ids
    prefix, k = tuple(ids2.shape[:-1]), ids2.shape[-1]
    offsets = _evenly_spaced(xp, math.prod(prefix), k)
    flat_weights = (
        None if weights is None else xp.ascontiguousarray(weights, np.float32).reshape(-1)
    )
    if flat_weights is not None and flat_weights.size != ids2.size:
        raise ValueError(f"{flat_weights.size} weights for {ids2.size} ids")
    flat = xp.ascontiguousarray(ids2.reshape(-1)).astype(np.int64, copy=False)
    return Request(flat, offsets, flat_weights, prefix, dense=True)


def masked_request(ids, keep) -> Request:
    """A request for dense ids ``[..., k]`` of which only those where ``keep`` (same shape) is
    true take part: each segment holds its kept ids (padding is left out of lookups,
    gradients and combiners' counts). NumPy or CuPy.

    >>> request = masked_request(np.array([[3, -1], [5, 6]]), np.array([[1, 0], [1, 1]], bool))
    >>> request.ids.tolist(), request.offsets.tolist(), request.prefix
    ([3, 5, 6], [0, 1, 3], (2,))
    """
    xp = array_module(ids)
    ids2 = ids.reshape(-1, 1) if ids.ndim == 1 else ids
    keep2 = keep.reshape(ids2.shape)
    prefix = tuple(ids2.shape[:-1])
    counts = keep2.reshape(-1, ids2.shape[-1]).sum(axis=1, dtype=np.int64)
    offsets = xp.concatenate([xp.zeros(1, np.int64), xp.cumsum(counts)])
    return Request(kept_ids(ids2, keep2), offsets, None, prefix, dense=True)


def ragged_request(name: str, value: Ragged, use_weight: bool = True) -> Request:
    """A request for feature ``name``'s ragged ids: one segment per innermost list.

    Every level but the innermost must be padded (equal lengths, as after a 3-D
    ``SequenceTruncate``), which gives the output shape ``[B, L, ..., dim]``.
    """
    prefix = [value.num_rows]
    for level in range(value.ragged_rank - 1):
        lengths = value.row_lengths(level)
        if lengths.size and bool((lengths != lengths[0]).any()):
            found = sorted(set(interop.to_host(lengths).tolist()))
            raise ValueError(
                f"feature {name!r}: a ragged input with {value.ragged_rank} levels must be "
                f"padded before lookup (rows of level {level} have lengths {found})"
            )
        prefix.append(int(lengths[0]) if lengths.size else 0)
    if value.values.dtype.kind not in "iu":
        raise TypeError(f"feature {name!r}: expected integer ids, got {value.values.dtype}")
    ids = value.values.astype(np.int64, copy=False)
    weights = value.weights if use_weight else None
    offsets = value.offsets[-1].astype(np.int64, copy=False)
    return Request(ids, offsets, weights, tuple(prefix), dense=False)


def output_shape(request: Request, dim: int, tile_len: int | None = None) -> tuple[int, ...]:
    """A feature's embedding shape: ``prefix + (dim,)``, or with the tile combiner
    ``prefix + (tile_len, dim)`` — flattened to ``prefix + (tile_len * dim,)`` for dense
    inputs, as RecIS does."""
    if tile_len is None:
        return (*request.prefix, dim)
    if request.dense:
        return (*request.prefix, tile_len * dim)
    return (*request.prefix, tile_len, dim)


def merge_requests(requests: list[Request], with_ids: bool = True) -> Request:
    """Concatenate requests: ids, shifted offsets and weights (ones where a request has none).

    Requests on the GPU make a GPU request (host parts, such as empty padding, are copied).
    ``with_ids=False`` leaves the merged ``ids`` out (None), for callers that need only the
    segments.
    """
    if len(requests) == 1:
        single = requests[0]
        return Request(single.ids, single.offsets, single.weights, (single.num_segments,), False)
    xp = next((m for m in (array_module(r.ids) for r in requests) if m is not np), np)
    offsets = _merged_offsets(xp, requests)
    weights = None
    if any(r.weights is not None for r in requests):
        weights = xp.concatenate(
            [
                xp.asarray(r.weights) if r.weights is not None else xp.ones(r.ids.size, np.float32)
                for r in requests
            ]
        )
    segments = sum(r.num_segments for r in requests)
    ids = xp.concatenate([xp.asarray(r.ids) for r in requests]) if with_ids else None
    return Request(ids, offsets.astype(np.int64, copy=xp is np), weights, (segments,), False)


def _evenly_spaced(xp, segments: int, k: int):
    """Offsets of ``segments`` segments of ``k`` ids each, made once per shape and reused
    (read-only: nothing writes offsets), so a step of fixed-size batches does no work for them
    (on the GPU: launches nothing)."""
    if xp is np:
        return _host_evenly_spaced(segments, k)
    return _device_evenly_spaced(xp, xp.cuda.runtime.getDevice(), segments, k)


@functools.lru_cache(maxsize=256)
def _host_evenly_spaced(segments: int, k: int) -> np.ndarray:
    offsets = np.arange(segments + 1, dtype=np.int64) * k
    offsets.flags.writeable = False
    return offsets


@functools.lru_cache(maxsize=256)
def _device_evenly_spaced(xp, device: int, segments: int, k: int):
    return xp.asarray(_host_evenly_spaced(segments, k))


@functools.lru_cache(maxsize=64)
def _device_tags(xp, device: int, values: tuple[int, ...], sizes: tuple[int, ...]):
    """``values[f]`` repeated ``sizes[f]`` times, as int64 on the GPU."""
    return xp.asarray(np.repeat(np.array(values, np.int64), sizes))


def _merged_offsets(xp, requests: list[Request]):
    """The offsets of the requests one after another: each request's offsets past its first,
    shifted by the ids before it; on the GPU in a fixed number of operations, the shifts made
    once per shape (a step of fixed-size batches does no work per request)."""
    starts = np.cumsum([0] + [r.ids.size for r in requests[:-1]])
    if xp is np:
        shifted = [np.asarray(r.offsets[1:]) + s for r, s in zip(requests, starts, strict=True)]
        return np.concatenate([np.zeros(1, np.int64), *shifted])
    device = xp.cuda.runtime.getDevice()
    spacings = tuple(_spacing(xp, device, r) for r in requests)
    if None not in spacings:  # every request evenly spaced: the merged offsets are too
        return _device_merged_spacings(xp, device, spacings)
    counts = tuple(r.num_segments for r in requests)
    shifts = _device_shifts(xp, device, tuple(starts.tolist()), counts)
    pieces = [xp.zeros(1, np.int64)] + [xp.asarray(r.offsets[1:]) for r in requests]
    return xp.concatenate(pieces) + shifts


def _spacing(xp, device: int, request: Request) -> tuple[int, int] | None:
    """(segments, k) of a GPU request whose offsets are the cached evenly spaced ones of
    :func:`_evenly_spaced` (``k`` ids per segment), else None."""
    segments = request.num_segments
    k = request.ids.size // segments if segments else 0
    if request.offsets is _device_evenly_spaced(xp, device, segments, k):
        return segments, k
    return None


@functools.lru_cache(maxsize=256)
def _device_merged_spacings(xp, device: int, spacings: tuple[tuple[int, int], ...]):
    """The merged offsets of evenly spaced requests (``(segments, k)`` each), made once."""
    pieces = [np.zeros(1, np.int64)]
    for segments, k in spacings:
        pieces.append(pieces[-1][-1] + _evenly_spaced(np, segments, k)[1:])
    return xp.asarray(np.concatenate(pieces))


@functools.lru_cache(maxsize=256)
def _device_shifts(xp, device: int, starts: tuple[int, ...], counts: tuple[int, ...]):
    """Every merged offset's shift (0, then ``starts[r]`` for each segment of request ``r``)."""
    return xp.asarray(np.concatenate([[0], np.repeat(starts, counts)]).astype(np.int64))


@dataclass
class TableGroup:
    """Features stored in one physical table (``name``), holding logical tables ``children``;
    features are ordered so that equal runtime options are adjacent. ``trainable``: whether a
    trainable feature uses the table (a logical table no feature trains is stored apart)."""

    name: str
    features: list[str]
    children: list[str]
    tags: dict[str, int]
    trainable: bool = True

    def runs(self, options: dict) -> list[list[str]]:
        """Consecutive features with equal ``runtime_info()``: one combine call each."""
        runs = itertools.groupby(self.features, key=lambda f: options[f].runtime_info())
        return [list(run) for _, run in runs]

    def lookup_keys(self, requests: dict[str, Request]) -> tuple[np.ndarray, np.ndarray]:
        """All ids of the group's features, concatenated in order, and their tags (on the ids'
        device)."""
        parts = [requests[f].ids for f in self.features]
        xp = array_module(parts[0])
        sizes = [part.size for part in parts]
        values = np.array([self.tags[f] for f in self.features], np.int64)
        if xp is np or len(parts) == 1:
            return xp.concatenate(parts), xp.asarray(np.repeat(values, sizes))
        # on the GPU, the tags of a shape are made once and reused (nothing writes them)
        device = xp.cuda.runtime.getDevice()
        tags = _device_tags(xp, device, tuple(values.tolist()), tuple(sizes))
        return xp.concatenate(parts), tags


def plan_tables(options: dict) -> list[TableGroup]:
    """Group features by storage options into physical tables (see the module docstring)."""
    trained = {option.shared_name for option in options.values() if option.trainable}
    by_storage: dict[tuple[str, bool], list[str]] = {}
    for feature, option in options.items():
        key = (option.coalesced_info(), option.shared_name in trained)
        by_storage.setdefault(key, []).append(feature)
    _check_shared_names(options, by_storage)
    groups = []
    for (_, trainable), features in by_storage.items():
        features = sorted(features, key=lambda f: options[f].runtime_info())
        children = list(dict.fromkeys(options[f].shared_name for f in features))
        name = children[0] if len(children) == 1 else f"{children[0]}+{len(children) - 1}"
        tags = {f: children.index(options[f].shared_name) for f in features}
        groups.append(TableGroup(name, features, children, tags, trainable))
    return groups


def _check_shared_names(options: dict, by_storage: dict[tuple[str, bool], list[str]]) -> None:
    owner: dict[str, str] = {}
    for info, features in by_storage.items():
        for feature in features:
            name = options[feature].shared_name
            if owner.setdefault(name, info) != info:
                raise ValueError(
                    f"shared_name {name!r} is used by features with different storage options "
                    f"(dim, dtype, initializer, hooks, ...); feature {feature!r} differs"
                )

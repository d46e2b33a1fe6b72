"""Feature inputs in engine form, padded to a batch bucket and laid out for zero-copy export.

A feature's input — dense ids ``[B, ..., k]`` (any array with ``__dlpack__``) or a
:class:`~recis.core.ragged.Ragged` — becomes a :class:`~recis.embedding.plan.Request`.
:func:`pad_request` appends empty segments so that the batch dimension is a fixed bucket size:
padded samples hold no ids, so they insert nothing and embed as zeros. :func:`layout_run` places
the features of one combine call back to back, with empty segments between them so that each
feature's output starts on an :data:`~recis.core.arrays.ALIGNMENT`-byte boundary: JAX shares
such views of the engine's output instead of copying them. Inputs on the GPU (JAX GPU arrays,
imported over DLPack, or CuPy arrays) give requests and layouts of CuPy arrays.

>>> import numpy as np
>>> request = pad_request(feature_request("f", np.array([[3, 4], [5, 6]])), batch_size=3)
>>> request.prefix, request.offsets.tolist()
((3,), [0, 2, 4, 4])
>>> layout = layout_run(["a", "b"], {"a": request, "b": request}, dim=4)
>>> layout.slices, layout.shapes["b"]
({'a': (0, 3), 'b': (4, 7)}, (3, 4))
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from recis.core import arrays as interop
from recis.core.arrays import array_module
from recis.core.padded import Padded
from recis.core.ragged import Ragged
from recis.embedding import plan
from recis.embedding.plan import (
    Request,
    dense_request,
    masked_request,
    merge_requests,
    output_shape,
    ragged_request,
)


def feature_request(
    name: str, value, use_weight: bool = True, padding_id: int | None = None
) -> Request:
    """The :class:`Request` of feature ``name``'s input: dense integer ids, a Ragged, a
    :class:`~recis.core.padded.Padded` (ids and a mask), or a :class:`Request` that a front end
    built itself. Dense ids equal to ``padding_id`` (when given) are padding."""
    if isinstance(value, Request):
        return value
    if isinstance(value, Ragged):
        return ragged_request(name, value, use_weight)
    if isinstance(value, Padded):
        ids = _dense_ids(name, value.ids)
        mask = _engine_array(name, value.mask)
        if mask.dtype != np.bool_ or mask.shape != ids.shape:
            raise ValueError(
                f"feature {name!r}: the mask must be boolean and shaped like the ids "
                f"{tuple(ids.shape)}, got {mask.dtype} {tuple(mask.shape)}"
            )
        keep = mask if padding_id is None else mask & (ids != padding_id)
        return masked_request(ids, keep)
    ids = _dense_ids(name, value)
    if padding_id is not None:
        return masked_request(ids, ids != padding_id)
    return dense_request(ids)


def _engine_array(name: str, value):
    if not hasattr(value, "__dlpack__"):
        raise TypeError(
            f"feature {name!r}: expected an integer array, a Ragged or a Padded, got "
            f"{type(value).__name__}"
        )
    if isinstance(value, np.ndarray) or array_module(value) is not np:  # NumPy or CuPy
        value = array_module(value).ascontiguousarray(value)  # e.g. a column of a [B, F] array
    return interop.as_engine_array(value, f"feature {name!r}")


def _dense_ids(name: str, value):
    ids = _engine_array(name, value)
    if ids.dtype.kind not in "iu" or ids.ndim == 0:
        raise TypeError(f"feature {name!r}: expected integer ids [B, ..., k], got {ids.dtype}")
    return ids


def pad_request(request: Request, batch_size: int) -> Request:
    """``request`` with empty segments appended so that its batch dimension is ``batch_size``."""
    rows, *inner = request.prefix
    if batch_size < rows:
        raise ValueError(f"batch of {rows} rows does not fit the padded size {batch_size}")
    extra = (batch_size - rows) * math.prod(inner)
    if not extra:
        return request
    xp = array_module(request.offsets)
    offsets = xp.concatenate([request.offsets, xp.repeat(request.offsets[-1:], extra)])
    return Request(request.ids, offsets, request.weights, (batch_size, *inner), request.dense)


@dataclass
class RunLayout:
    """Features combined by one call: the ``merged`` request, each feature's segments
    ``slices[f] = (start, stop)`` of the output and its output shape ``shapes[f]``, and the
    ``num_ids`` of the features (on the GPU ``merged.ids`` is None: the lookup has them)."""

    merged: Request
    slices: dict[str, tuple[int, int]]
    shapes: dict[str, tuple[int, ...]]
    num_ids: int = 0

    def split(self, out: np.ndarray) -> dict[str, np.ndarray]:
        """Each feature's view of the combined output ``out``."""
        return {f: out[a:b].reshape(self.shapes[f]) for f, (a, b) in self.slices.items()}

    def join(self, parts: dict, segment_shape: tuple[int, ...]) -> np.ndarray:
        """The inverse of :meth:`split`: every feature's ``parts[f]`` in one array (JAX arrays
        on the GPU are imported over DLPack and joined there).

        A feature missing from ``parts`` (one that no loss depends on) counts as zeros; at
        least one must be there. Segments that hold no feature are left uninitialised: they hold
        no ids, so nothing reads them.
        """
        arrays = {f: _part(parts, f, shape) for f, shape in self.shapes.items() if f in parts}
        if not arrays:
            raise KeyError(f"no gradient for any of the features {list(self.shapes)}")
        if list(self.slices.values()) == [(0, self.merged.num_segments)]:
            (array,) = arrays.values()
            return array.reshape(-1, *segment_shape)
        joined = self._joined_view(arrays, segment_shape)
        if joined is not None:
            return joined
        xp = array_module(next(iter(arrays.values())))
        bounds = sorted(self.slices.values())
        if [a for a, _ in bounds] == [0] + [b for _, b in bounds[:-1]] and bounds[-1][1] == (
            self.merged.num_segments
        ):  # the features cover the segments in order: one concatenation
            order = sorted(self.slices, key=lambda f: self.slices[f])
            pieces = [
                arrays[f].reshape(-1, *segment_shape).astype(np.float32, copy=False) for f in order
            ]
            return xp.concatenate(pieces)
        out = interop.empty((self.merged.num_segments, *segment_shape), np.float32, xp)
        for feature, (start, stop) in self.slices.items():
            if feature in arrays:
                out[start:stop] = arrays[feature].reshape(-1, *segment_shape)
            else:
                out[start:stop] = 0
        return out

    def _joined_view(self, arrays: dict, segment_shape: tuple[int, ...]) -> np.ndarray | None:
        """The parts as one array without a copy, when every feature's part is a float32
        C-contiguous NumPy view of one buffer at its place in the layout (e.g. the front end's
        gradients of the combined output); else None."""
        if len(arrays) != len(self.slices) or not all(
            isinstance(a, np.ndarray) and a.dtype == np.float32 and a.flags.c_contiguous
            for a in arrays.values()
        ):
            return None
        first = min(self.slices, key=self.slices.get)
        if self.slices[first][0] != 0:
            return None
        segment_bytes = 4 * math.prod(segment_shape)
        origin, root = arrays[first].ctypes.data, _root(arrays[first])
        for feature, (start, _) in self.slices.items():
            part = arrays[feature]
            if part.ctypes.data != origin + start * segment_bytes or _root(part) is not root:
                return None
        shape = (self.merged.num_segments, *segment_shape)
        return np.lib.stride_tricks.as_strided(
            arrays[first], shape, (segment_bytes, *np.empty(shape[1:], np.float32).strides),
            writeable=False,
        )  # fmt: skip


def _root(array: np.ndarray):
    """The object owning ``array``'s memory, at the end of its chain of views."""
    while isinstance(array, np.ndarray) and array.base is not None:
        array = array.base
    return array


def layout_run(
    features: list[str], requests: dict[str, Request], dim: int, tile_len: int | None = None
) -> RunLayout:
    """Lay out ``features`` (already padded) back to back, each starting aligned."""
    segment_bytes = 4 * dim * (tile_len or 1)
    unit = interop.ALIGNMENT // math.gcd(segment_bytes, interop.ALIGNMENT)
    xp = array_module(requests[features[0]].ids)
    parts, slices, shapes, start = [], {}, {}, 0
    for feature in features:
        gap = -start % unit
        if gap:
            parts.append(_empty_segments(gap, xp))
        request = requests[feature]
        start += gap
        slices[feature] = (start, start + request.num_segments)
        shapes[feature] = output_shape(request, dim, tile_len)
        parts.append(request)
        start += request.num_segments
    merged = merge_requests(parts, with_ids=xp is np)
    return RunLayout(merged, slices, shapes, sum(part.ids.size for part in parts))


def _empty_segments(count: int, xp=np) -> Request:
    ids = xp.empty(0, np.int64)
    return Request(ids, plan._evenly_spaced(xp, count, 0), None, (count,), False)


def _part(parts: dict, feature: str, shape: tuple[int, ...]) -> np.ndarray:
    """Feature ``feature``'s gradient as an engine array: host arrays as NumPy, arrays on the
    GPU (JAX or CuPy) as CuPy, shared over DLPack."""
    if feature not in parts:
        raise KeyError(f"no gradient for feature {feature!r}")
    array = parts[feature]
    if _on_gpu(array):
        array = interop.as_engine_array(array, f"feature {feature!r} gradient")
    else:
        array = np.asarray(array)
    if array.shape != shape:
        raise ValueError(
            f"feature {feature!r}: gradient of shape {array.shape}, its activation is {shape}"
        )
    return array


def _on_gpu(array) -> bool:
    """Whether ``array`` is a CuPy array or a DLPack producer on a device other than the CPU."""
    if array_module(array) is not np:
        return True
    device = getattr(array, "__dlpack_device__", None)
    return device is not None and device()[0] != 1  # 1: kDLCPU

"""GPU twins of the fill kernels of :mod:`recis.core.kernels.random`, on CuPy arrays.

Same signatures as the CPU kernels: ``ids`` (CuPy int64), ``streams`` (the per-table streams, a
NumPy uint64 array), ``tags`` and ``tag_stride`` (a stride of 0: every id belongs to table
``tags[0]``, with ``tags`` a NumPy array; a stride of 1: ``tags`` is a CuPy int64 array, one tag per
id) and the float32 CuPy output ``out[n, dim]``. The values equal the CPU's bit for bit
(``cuda/initializers.cu``); the parameters are rounded to float32 here, as the CPU kernels do.

A tag that names no table (checking would wait for the device) makes its id's row NaN.

>>> fill_uniform.__name__
'fill_uniform'
"""

from __future__ import annotations

import numpy as np

from recis.core.cuda import loader

SOURCE = "initializers.cu"
NULL = np.uint64(0)  # a null pointer argument


def fill_constant(value: float, out) -> None:
    """Set every element of ``out`` to ``value`` (rounded to float32)."""
    out.fill(np.float32(value))


def fill_uniform(ids, streams, tags, tag_stride: int, low: float, high: float, out) -> None:
    """Row ``i`` of ``out`` gets uniform(low, high) values for ``ids[i]``."""
    _fill("fill_uniform", ids, streams, tags, tag_stride, out, np.float32(low), np.float32(high))


def fill_normal(ids, streams, tags, tag_stride: int, mean: float, std: float, out) -> None:
    """Row ``i`` of ``out`` gets normal(mean, std) values for ``ids[i]``."""
    _fill("fill_normal", ids, streams, tags, tag_stride, out, np.float32(mean), np.float32(std))


def fill_truncated_normal(
    ids, streams, tags, tag_stride: int, mean: float, std: float, a: float, b: float, out
) -> None:
    """Row ``i`` of ``out`` gets normal(mean, std) values within [a, b] for ``ids[i]``."""
    bounds = (np.float32(mean), np.float32(std), np.float32(a), np.float32(b))
    _fill("fill_truncated_normal", ids, streams, tags, tag_stride, out, *bounds)


def random_bits(ids, streams, tags, tag_stride: int, dim: int, attempt: int, lane: int):
    """The generator's raw bits ``uint64[n, dim]`` of (attempt, lane) for every element: what
    the distributions above are made of, to compare with the CPU bit for bit."""
    cupy = loader.require_cupy("GPU random bits")
    bits = cupy.empty((ids.size, dim), np.uint64)
    draw = (np.uint64(attempt), np.uint64(lane), bits)
    _launch("draw_raw_bits", ids, (streams, tags, tag_stride), dim, NULL, draw)
    return bits


def _fill(kernel: str, ids, streams, tags, tag_stride: int, out, *parameters) -> None:
    _launch(kernel, ids, (streams, tags, tag_stride), out.shape[1], out, parameters)


def _launch(kernel: str, ids, tables: tuple, dim: int, out, parameters: tuple) -> None:
    """Launch over ``len(ids) * dim`` elements: the kernels take (ids, dim, streams,
    num_streams, tags, single_stream, out, total, parameters...)."""
    total = ids.size * dim
    if total:
        args = (ids, np.int64(dim), *_tables(*tables), out, np.int64(total), *parameters)
        loader.launch(loader.kernel(SOURCE, kernel), total, args)


def _tables(streams, tags, tag_stride: int) -> tuple:
    """(streams, num_streams, tags, single_stream): one table as a scalar, several as arrays."""
    streams = np.asarray(streams, np.uint64)
    if tag_stride == 0:
        return (NULL, np.int64(0), NULL, np.uint64(streams[int(tags[0])]))
    return (_on_device(streams), np.int64(streams.size), tags, np.uint64(0))


_DEVICE_STREAMS: dict[bytes, object] = {}


def _on_device(streams: np.ndarray):
    """``streams`` (the children's streams of a table) on the GPU, copied there once."""
    key = streams.tobytes()
    if key not in _DEVICE_STREAMS:
        _DEVICE_STREAMS[key] = loader.require_cupy("GPU initializers").asarray(streams)
    return _DEVICE_STREAMS[key]

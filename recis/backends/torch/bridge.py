"""Calling the engine from torch: tensors in and out over DLPack, GPU work on torch's stream.

Tensors enter the engine as NumPy (CPU) or CuPy (CUDA) views of their memory (:func:`as_engine`),
engine arrays leave as tensors sharing theirs (:func:`as_tensor`): nothing is copied, and a CUDA
tensor's data never visits the host. Engine work runs inside :func:`beside_torch`: CPU kernels on
:func:`~recis.core.threads.framework_kernel_threads` threads beside torch's pool, GPU kernels on
torch's current device and current CUDA stream, so they are ordered with torch's own work without
any synchronisation. GPU engine memory comes from torch's caching allocator (one stream-ordered
pool, see :mod:`recis.core.cuda.memory`), allocated on the stream that uses it.

>>> import numpy as np, torch
>>> values = as_tensor(np.arange(3.0))
>>> values.tolist(), as_engine(values, "values").__array_interface__["data"][0] == values.data_ptr()
([0.0, 1.0, 2.0], True)
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from recis.core import arrays as interop
from recis.core.cuda.loader import require_cupy
from recis.core.threads import framework_kernel_threads, kernel_threads


def as_engine(tensor: torch.Tensor, name: str):
    """The engine array (NumPy or CuPy) viewing ``tensor`` (detached, made contiguous first)."""
    tensor = tensor.detach().contiguous()
    if tensor.device.type == "cpu" and tensor.dtype in _NUMPY_VIEWABLE:
        return tensor.numpy()  # the same view as over DLPack, without its per-call cost
    return interop.as_engine_array(tensor, name)


_NUMPY_VIEWABLE = frozenset((torch.int32, torch.int64, torch.float32, torch.float64))


def as_tensor(array) -> torch.Tensor:
    """A tensor sharing the memory of an engine array (on the CPU or the GPU)."""
    if isinstance(array, np.ndarray):
        return torch.from_numpy(array)
    return torch.from_dlpack(array)


@contextmanager
def torch_stream() -> Iterator[None]:
    """Make torch's current CUDA device and stream CuPy's inside the block.

    Nothing changes while torch has not initialised CUDA or CuPy is not loaded: then no engine
    work runs on the GPU.
    """
    cupy = sys.modules.get("cupy")
    if cupy is None or not torch.cuda.is_initialized():
        yield
        return
    from recis.core.cuda.streams import on_stream

    share_torch_pool()
    stream = torch.cuda.current_stream()
    with cupy.cuda.Device(stream.device.index), on_stream(stream.cuda_stream):
        yield


@contextmanager
def engine_device(device: torch.device) -> Iterator[None]:
    """Make a CUDA ``device`` and torch's current stream there CuPy's inside the block (where a
    GPU table allocates its arrays, from torch's pool); nothing changes for the CPU."""
    if device.type != "cuda" or device.index is None:
        yield
        return
    from recis.core.cuda.streams import on_stream

    cupy = require_cupy(f"a table on {device}")
    share_torch_pool()
    stream = torch.cuda.current_stream(device)
    with cupy.cuda.Device(device.index), on_stream(stream.cuda_stream):
        yield


def share_torch_pool() -> None:
    """Make the GPU engine allocate through torch's caching allocator (once per process)."""
    from recis.core.cuda import memory

    memory.share_pool("torch", _torch_malloc, _torch_free)


def _torch_malloc(size: int, device: int, stream: int) -> int:
    return torch.cuda.caching_allocator_alloc(size, device, stream)


def _torch_free(address: int, device: int, stream: int) -> None:
    torch.cuda.caching_allocator_delete(address)


def beside_torch(function):
    """Decorator: run ``function`` beside torch (see the module docstring)."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with kernel_threads(framework_kernel_threads()), torch_stream():
            return function(*args, **kwargs)

    return wrapper

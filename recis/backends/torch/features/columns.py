"""Feature inputs at the edge: torch tensors and ``RaggedTensor``\\ s in, engine columns out.

Ops accept a dense ``torch.Tensor``, a :class:`RaggedTensor`, a NumPy or
CuPy array or an engine :class:`~recis.core.ragged.Ragged`, and return results of the kind they
were given. Torch tensors are shared with the engine without copies (DLPack); results go back the
same way. CUDA tensors are computed on their GPU by the engine's CUDA kernels (CuPy), on torch's
current stream there (:func:`on_input_device`), so the work is ordered with the caller's without
waiting for it.

>>> import torch
>>> column, back = split_values(torch.tensor([[1, 2], [3, 4]]))
>>> back(column * 10)
tensor([[10, 20],
        [30, 40]])
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Mapping

import numpy as np
import torch

from recis.backends.torch.ragged import RaggedPadInfo, RaggedTensor
from recis.core import arrays as interop
from recis.core.arrays import as_engine_array, export_like
from recis.core.cuda import loader, streams
from recis.core.ragged import Ragged

INPUT_KINDS = "a torch.Tensor, RaggedTensor, NumPy or CuPy array or Ragged"


def split_values(x) -> tuple[np.ndarray | Ragged, Callable]:
    """The engine column to compute a value-wise op on, and the function that gives it back.

    The function takes a result with ``x``'s structure (same shape, or one value per value of a
    Ragged) and returns it in ``x``'s form; a ``RaggedTensor`` keeps its offsets, weight,
    ``dense_shape`` and ``pad_info``.
    """
    if isinstance(x, RaggedTensor):
        values = x.values()
        return engine_array(values, "values"), lambda out: ragged_like(x, export_like(out, values))
    if isinstance(x, torch.Tensor):
        return engine_array(x, "input"), lambda out: export_like(out, x)
    if isinstance(x, Ragged) or _is_engine_array(x):
        return x, lambda out: out
    raise TypeError(f"expected {INPUT_KINDS}, got {type(x).__name__}")


def split_ragged(x, with_weights: bool = True) -> tuple[Ragged, Callable]:
    """The engine Ragged of ``x``, and a function ``(ragged, dense_shape) -> x's kind``.

    ``with_weights=False`` leaves a ``RaggedTensor``'s weight out of the engine Ragged.
    """
    if isinstance(x, RaggedTensor):
        ragged = x.to_engine() if with_weights else _ragged_without_weights(x)
        return ragged, lambda out, dense_shape: RaggedTensor.from_engine(out, dense_shape)
    if isinstance(x, Ragged):
        return x, lambda out, dense_shape: out
    raise TypeError(f"expected a RaggedTensor or a Ragged, got {type(x).__name__}")


def engine_array(tensor: torch.Tensor, name: str) -> np.ndarray:
    """A NumPy (CPU) or CuPy (CUDA) view of a torch tensor (detached, made contiguous)."""
    if tensor.is_cuda:
        loader.require_cupy("feature ops on CUDA tensors")
    return as_engine_array(tensor.detach().contiguous(), name)


def on_input_device(method: Callable) -> Callable:
    """Decorator of ``method(self, x, ...)``: when ``x`` holds CUDA tensors, run it with CuPy on
    their GPU and on torch's current stream there (see the module docstring)."""

    @functools.wraps(method)
    def wrapper(self, x, *args, **kwargs):
        with input_device(x):
            return method(self, x, *args, **kwargs)

    return wrapper


@contextlib.contextmanager
def input_device(x) -> Iterator[None]:
    """Make the GPU of ``x``'s first CUDA tensor, and torch's current stream on it, CuPy's
    current device and stream inside the ``with`` block; nothing for inputs without CUDA tensors.

    ``x`` is a tensor, a ``RaggedTensor``, or a list, tuple or dict of them.
    """
    device = _cuda_device(x)
    if device is None:
        yield
        return
    cupy = loader.require_cupy("feature ops on CUDA tensors")
    stream = torch.cuda.current_stream(device).cuda_stream
    with cupy.cuda.Device(device.index), streams.on_stream(stream):
        yield


def _cuda_device(x) -> torch.device | None:
    if isinstance(x, RaggedTensor):
        x = x.values()
    if isinstance(x, torch.Tensor):
        return x.device if x.is_cuda else None
    items = x.values() if isinstance(x, Mapping) else x if isinstance(x, list | tuple) else ()
    for item in items:
        device = _cuda_device(item)
        if device is not None:
            return device
    return None


def _is_engine_array(x) -> bool:
    try:
        interop.namespace(x)
    except TypeError:
        return False
    return True


def ragged_like(x: RaggedTensor, values: torch.Tensor) -> RaggedTensor:
    """``x`` with new values (one per old value), keeping everything else."""
    result = RaggedTensor(values, x.offsets(), x.weight(), x.dense_shape)
    if x.pad_info is not None:
        result.set_pad_info(x.pad_info)
    return result


def pad_info_of(drop_nums, pad_nums, truncate_left: bool, like) -> RaggedPadInfo:
    """RecIS's record of a truncation: per-row drop and pad counts and the sides used.

    The drop side is True when rows were truncated on the left; padding is never on the left.
    """
    return RaggedPadInfo(
        export_like(drop_nums, like),
        export_like(pad_nums, like),
        torch.tensor([truncate_left]),
        torch.tensor([False]),
    )


def _ragged_without_weights(x: RaggedTensor) -> Ragged:
    offsets = tuple(engine_array(o, f"offsets[{i}]") for i, o in enumerate(x.offsets()))
    return Ragged(engine_array(x.values(), "values"), offsets)

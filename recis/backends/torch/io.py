"""Batches in pinned memory and their asynchronous copy to a GPU (torch output).

With ``device="pin"`` or ``"cuda"``, :func:`pinned_allocator` makes the packer write batches
straight into page-locked host memory, taken from torch's caching host allocator, and
:func:`pinned_tensor` finds the torch tensor behind such an array, so no batch is copied on the
host. With ``device="cuda"``, a :class:`CudaTransfer` copies each batch, on the producer thread,
to the GPU that was current when iteration started, on a stream of its own, so that the copy
overlaps the consumer's training step. The consumer's current stream waits for the copy through
a CUDA event when it receives the batch: the host never waits for the GPU.

Memory stays valid without synchronisation: the caching host allocator reuses a pinned buffer
only once the copies that read it are done, and the GPU tensors are marked as used on the
consumer's stream, so the caching allocator reuses them only once that stream's work is done.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import ml_dtypes
import numpy as np
import torch

from recis.backends.torch.ragged import RaggedTensor

_BFLOAT16 = np.dtype(ml_dtypes.bfloat16)


def torch_dtype(dtype: np.dtype) -> torch.dtype | None:
    """The torch dtype of NumPy ``dtype``, or None when torch has none.

    >>> torch_dtype(np.dtype(np.int64)), torch_dtype(np.dtype(object))
    (torch.int64, None)
    """
    if dtype == _BFLOAT16:
        return torch.bfloat16
    try:
        return torch.from_numpy(np.empty(0, dtype)).dtype
    except TypeError:
        return None


def pinned_allocator() -> Callable[[tuple[int, ...], np.dtype], np.ndarray]:
    """``allocate(shape, dtype)``: a NumPy array over a new pinned torch tensor (aligned host
    memory for a dtype torch does not have)."""

    def allocate(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        wanted = torch_dtype(dtype)
        if wanted is None:
            return np.empty(shape, dtype)
        tensor = torch.empty(shape, dtype=wanted, pin_memory=True)
        if wanted == torch.bfloat16:  # NumPy reads it as ml_dtypes.bfloat16
            return tensor.view(torch.int16).numpy().view(_BFLOAT16)
        return tensor.numpy()

    return allocate


def pinned_tensor(array: np.ndarray) -> torch.Tensor | None:
    """The pinned torch tensor (of ``array``'s dtype and shape) whose memory ``array`` is all of,
    or None when ``array`` was not made by a :func:`pinned_allocator`."""
    owner = array.base
    while isinstance(owner, np.ndarray):  # views of the array torch made
        owner = owner.base
    if not isinstance(owner, torch.Tensor) or owner.device.type != "cpu":
        return None
    size = owner.numel() * owner.element_size()
    if owner.data_ptr() != array.ctypes.data or size != array.nbytes or not owner.is_pinned():
        return None
    return owner.view(torch_dtype(array.dtype)).view(array.shape)


@dataclass(frozen=True)
class InFlight:
    """A batch whose copy to the GPU was queued, and the event recorded after that copy."""

    columns: dict
    ready: torch.cuda.Event


class CudaTransfer:
    """Copies batches to the GPU current at creation, on a stream of its own (see the module
    docstring): :meth:`send` on the producer thread, :meth:`receive` on the consumer's."""

    def __init__(self) -> None:
        if not torch.cuda.is_available():
            raise RuntimeError("device='cuda': torch sees no CUDA device")
        self._device = torch.device("cuda", torch.cuda.current_device())
        self._stream = torch.cuda.Stream(self._device)

    def send(self, columns: dict) -> InFlight:
        """Queue the copy of a converted batch; tensors' host memory should be pinned."""
        with torch.cuda.device(self._device), torch.cuda.stream(self._stream):
            moved = {name: self._copy(value) for name, value in columns.items()}
            ready = torch.cuda.Event()
            ready.record(self._stream)
        return InFlight(moved, ready)

    def receive(self, sent: InFlight) -> dict:
        """The batch, ready for work queued on the consumer's current stream from now on."""
        stream = torch.cuda.current_stream(self._device)
        stream.wait_event(sent.ready)
        for tensor in _tensors(sent.columns.values()):
            tensor.record_stream(stream)
        return sent.columns

    def _copy(self, value):
        if isinstance(value, np.ndarray):  # Python objects (strings) stay on the host
            return value
        return value.cuda(self._device, non_blocking=True)


def _tensors(values) -> Iterator[torch.Tensor]:
    """The dense tensors holding the data of batch values (GPU tensors, ragged, sparse)."""
    for value in values:
        if isinstance(value, RaggedTensor):
            yield from (value.values(), *value.offsets())
            if value.weight() is not None:
                yield value.weight()
        elif isinstance(value, torch.Tensor) and value.is_sparse:
            yield from (value._indices(), value._values())
        elif isinstance(value, torch.Tensor):
            yield value

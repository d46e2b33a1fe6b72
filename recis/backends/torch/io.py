"""The torch side of :mod:`recis.io`: batches as tensors, in pinned memory, copied to a GPU.

Datasets produce NumPy arrays and :class:`~recis.core.ragged.Ragged`; :class:`TorchConverter`
turns them into tensors sharing their memory, ragged columns into :class:`RaggedTensor` (or
sparse COO tensors with ``ragged_format=False``). Object arrays (strings) stay NumPy arrays.

With ``device="pin"`` or ``"cuda"``, :func:`pinned_allocator` makes the packer write batches
straight into page-locked host memory, taken from torch's caching host allocator, and
:func:`pinned_tensor` finds the torch tensor behind such an array, so no batch is copied on the
host. With ``device="cuda"``, a :class:`CudaTransfer` copies each batch, on the producer thread,
to the GPU that was current when iteration started, on a stream of its own, so that the copy
overlaps the consumer's training step. The consumer's current stream waits for the copy through
a CUDA event when it receives the batch: the host never waits for the GPU. :class:`CudaHandOff`
does the same for the work of the transform thread (``prefetch_transform``).

Memory stays valid without synchronisation: the caching host allocator reuses a pinned buffer
only once the copies that read it are done, and the GPU tensors are marked as used on the
consumer's stream, so the caching allocator reuses them only once that stream's work is done.

Once torch is imported, datasets are torch ``IterableDataset`` s and split their files over
DataLoader sub-workers (:data:`IO_BACKEND`).

>>> TorchConverter("cpu", True).convert({"x": np.arange(3)}, 3)["x"]
tensor([0, 1, 2])
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import ml_dtypes
import numpy as np
import torch

from recis.backends.torch.ragged import RaggedTensor
from recis.core import arrays as interop
from recis.core.ragged import Ragged
from recis.io.frameworks import Backend, Converter, HandOff, Transfer

_BFLOAT16 = np.dtype(ml_dtypes.bfloat16)


class TorchConverter(Converter):
    """Batches as torch tensors (see the module docstring), for ``device`` "cpu", "pin" or
    "cuda"; the last two need torch to see a CUDA device."""

    def __init__(self, device: str, ragged_format: bool) -> None:
        if device != "cpu" and not torch.cuda.is_available():
            raise RuntimeError(f"device={device!r} needs a CUDA device, and torch sees none")
        self._device = device
        self._pinning = device != "cpu"
        self._ragged_format = ragged_format
        self._like = torch.empty(0)

    def convert(self, columns: dict, num_rows: int) -> dict:
        return {name: self._column(name, column, num_rows) for name, column in columns.items()}

    def allocator(self) -> Callable | None:
        return pinned_allocator() if self._pinning else None

    def transfer(self) -> Transfer:
        return CudaTransfer() if self._device == "cuda" else Transfer()

    def handoff(self) -> HandOff:
        return CudaHandOff() if self._device == "cuda" else HandOff()

    def _column(self, name: str, column, num_rows: int):
        if not isinstance(column, Ragged):
            return self._tensor(column)
        weights = None if column.weights is None else self._tensor(column.weights)
        offsets = [self._tensor(level) for level in column.offsets]
        shape = (num_rows, *[-1] * column.ragged_rank)
        value = RaggedTensor(self._tensor(column.values), offsets, weights, shape)
        if self._ragged_format:
            return value
        if len(column.offsets) != 1:
            raise ValueError(f"column {name!r}: ragged_format=False needs one list level")
        value = value.to_sparse()
        return value.pin_memory() if self._pinning else value

    def _tensor(self, array: np.ndarray):
        if array.dtype.hasobject:
            return array
        if not self._pinning:
            return self._shared(array)
        packed = pinned_tensor(array)  # packed into pinned memory: no copy
        return packed if packed is not None else self._shared(array).pin_memory()

    def _shared(self, array: np.ndarray) -> torch.Tensor:
        if array.dtype == _BFLOAT16:
            return torch.from_numpy(array.view(np.int16)).view(torch.bfloat16)
        return interop.export_like(array, self._like)


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


def numpy_dtype(dtype: torch.dtype) -> np.dtype:
    """The NumPy dtype of torch ``dtype`` (``ml_dtypes.bfloat16`` for bfloat16); TypeError when
    NumPy has none.

    >>> numpy_dtype(torch.float16), numpy_dtype(torch.bfloat16)
    (dtype('float16'), dtype(bfloat16))
    """
    if dtype == torch.bfloat16:
        return _BFLOAT16
    return torch.empty(0, dtype=dtype).numpy().dtype


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


class _SideStream:
    """A CUDA stream of its own on the GPU current at creation, and the hand-over of what was
    queued on it to the consumer's current stream through an event."""

    def __init__(self) -> None:
        if not torch.cuda.is_available():
            raise RuntimeError("device='cuda' needs a CUDA device, and torch sees none")
        self._device = torch.device("cuda", torch.cuda.current_device())
        self._stream = torch.cuda.Stream(self._device)

    def _run(self, work: Callable[[], object]) -> tuple[object, torch.cuda.Event]:
        """``work()`` with the side stream current, and the event recorded after it."""
        with torch.cuda.device(self._device), torch.cuda.stream(self._stream):
            result = work()
            ready = torch.cuda.Event()
            ready.record(self._stream)
        return result, ready

    def _hand_over(self, value, ready: torch.cuda.Event):
        """``value``, ready for work queued on the consumer's current stream from now on: that
        stream waits for ``ready``, and ``value``'s GPU tensors are marked as used on it."""
        stream = torch.cuda.current_stream(self._device)
        stream.wait_event(ready)
        for tensor in data_tensors(value):
            if tensor.is_cuda:
                tensor.record_stream(stream)
        return value


class CudaTransfer(_SideStream, Transfer):
    """Copies batches to the GPU current at creation, on a stream of its own (see the module
    docstring): :meth:`send` on the producer thread, :meth:`receive` on the consumer's."""

    def send(self, columns: dict) -> InFlight:
        """Queue the copy of a converted batch; tensors' host memory should be pinned."""
        moved, ready = self._run(lambda: {name: self._copy(v) for name, v in columns.items()})
        return InFlight(moved, ready)

    def receive(self, sent: InFlight) -> dict:
        """The batch, ready for work queued on the consumer's current stream from now on."""
        return self._hand_over(sent.columns, sent.ready)

    def _copy(self, value):
        if isinstance(value, np.ndarray):  # Python objects (strings) stay on the host
            return value
        return value.cuda(self._device, non_blocking=True)


class CudaHandOff(_SideStream, HandOff):
    """The hand-off of transformed batches on the GPU that is current when it is made: the
    transform thread's GPU work goes to a CUDA stream of its own, and the consumer's current
    stream waits for it through a CUDA event recorded after it (no host synchronisation). Every
    GPU tensor of the result is marked as used on the consumer's stream, so that the caching
    allocator reuses its memory only once the consumer's work queued on it is done."""

    def send(self, finish: Callable[[], object]) -> tuple:
        """``finish()`` with the transform stream current, and the event recorded after it."""
        return self._run(finish)

    def receive(self, sent: tuple):
        """The batch, ready for work queued on the consumer's current stream from now on."""
        return self._hand_over(*sent)


def data_tensors(value) -> Iterator[torch.Tensor]:
    """The tensors holding the data of ``value``: a torch tensor (dense, or the indices and
    values of a sparse COO one), a RaggedTensor, or dicts, lists and tuples of them, nested
    (other values hold none).

    >>> [t.tolist() for t in data_tensors({"a": [torch.ones(1), "text"], "b": np.ones(2)})]
    [[1.0]]
    """
    if isinstance(value, torch.Tensor):
        yield from (value._indices(), value._values()) if value.is_sparse else (value,)
    elif isinstance(value, RaggedTensor):
        yield from data_tensors((value.values(), *value.offsets(), value.weight()))
    elif isinstance(value, Mapping):
        yield from data_tensors(tuple(value.values()))
    elif isinstance(value, list | tuple):
        for item in value:
            yield from data_tensors(item)


def adopt_dataset(dataset_class: type) -> None:
    """Make ``dataset_class`` a (virtual) torch ``IterableDataset``, for
    ``DataLoader(dataset, batch_size=None, ...)``."""
    torch.utils.data.IterableDataset.register(dataset_class)


def worker_shard() -> tuple[int, int] | None:
    """(index, count) of the DataLoader sub-worker running this code, None outside one."""
    info = torch.utils.data.get_worker_info()
    return None if info is None else (info.id, info.num_workers)


IO_BACKEND = Backend(TorchConverter, numpy_dtype, adopt_dataset, worker_shard)

"""The last step of the pipeline: batches of NumPy arrays and Ragged to the caller's backend.

- ``"numpy"``: unchanged (dense NumPy arrays and :class:`~recis.core.ragged.Ragged`).
- ``"torch"``: tensors sharing the arrays' memory (DLPack), ragged columns as
  :class:`RaggedTensor` (or sparse COO tensors with ``ragged_format=False``);
  with ``device="pin"`` batches are packed straight into pinned memory, and with
  ``device="cuda"`` they are then copied to the GPU that is current when iteration starts,
  asynchronously on a stream of their own (see :mod:`recis.backends.torch.io`).
- ``"jax"``: jax arrays for dense columns (int64 and float64 columns need ``jax_enable_x64``,
  which is checked rather than letting JAX truncate them); ragged columns stay :class:`Ragged`,
  since sparse lookups run outside ``jit``. ``device="cuda"`` puts the arrays on the first GPU.

Object arrays (strings passed through) stay NumPy arrays. Conversion runs on the producer
(prefetch) thread, and so does the copy to the GPU for torch; a :class:`Transfer` per iteration
hands batches from one thread to the other (for JAX, the copy runs on the consumer's thread).

>>> convert = Output("numpy", "cpu").convert
>>> convert({"x": np.ones(2)}, 2)["x"].tolist()
[1.0, 1.0]
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import ml_dtypes
import numpy as np

from recis.core import arrays as interop
from recis.core.ragged import Ragged

OUTPUTS = ("numpy", "torch", "jax")
DEVICES = ("cpu", "pin", "cuda")
_BFLOAT16 = np.dtype(ml_dtypes.bfloat16)


class Output:
    """Converts batches for ``output`` (see the module docstring) and places them on ``device``."""

    def __init__(self, output: str, device: str, ragged_format: bool = True) -> None:
        check_output(output, device, ragged_format)
        self._output = output
        self._device = device
        self._ragged_format = ragged_format
        self._convert_column: Callable | None = None

    def convert(self, columns: dict, num_rows: int) -> dict:
        """Backend arrays for one batch (runs on the producer thread)."""
        if self._output == "numpy":
            return columns
        if self._convert_column is None:
            self._convert_column = _COLUMN_CONVERTERS[self._output](self)
        return {name: self._convert_column(name, col, num_rows) for name, col in columns.items()}

    def __getstate__(self) -> dict:
        return self.__dict__ | {"_convert_column": None}  # rebuilt after unpickling

    def allocator(self) -> Callable | None:
        """``allocate(shape, dtype)`` for the packer: pinned memory for torch batches bound for
        the GPU (``device="pin"`` or ``"cuda"``), None (aligned host memory) otherwise."""
        if self._output != "torch" or self._device == "cpu":
            return None
        return _torch_transfer(self._device).pinned_allocator()

    def transfer(self) -> Transfer:
        """A new :class:`Transfer` for one iteration (made on the consumer's thread, whose
        current GPU receives the batches)."""
        if self._device != "cuda":
            return Transfer()
        if self._output == "torch":
            return _torch_transfer(self._device).CudaTransfer()
        return _JaxToGpu()


class Transfer:
    """Hands converted batches from the producer to the consumer: :meth:`send` runs on the
    producer thread, :meth:`receive` on the consumer's. This one hands them over as they are."""

    def send(self, columns: dict):
        return columns

    def receive(self, sent) -> dict:
        return sent


class _JaxToGpu(Transfer):
    """Puts dense JAX arrays on the first GPU as the consumer receives them."""

    def receive(self, sent) -> dict:
        jax = importlib.import_module("jax")
        gpu = jax.devices("gpu")[0]
        return {
            name: value if isinstance(value, Ragged | np.ndarray) else jax.device_put(value, gpu)
            for name, value in sent.items()
        }


def check_output(output: str, device: str, ragged_format: bool) -> None:
    """Raise ``ValueError`` for an unknown or unsupported combination."""
    if output not in OUTPUTS:
        raise ValueError(f"output: expected one of {OUTPUTS}, got {output!r}")
    if device not in DEVICES:
        raise ValueError(f"device: expected one of {DEVICES}, got {device!r}")
    if output == "numpy" and device != "cpu":
        raise ValueError(f"device={device!r} needs output='torch' or 'jax'")
    if output == "jax" and device == "pin":
        raise ValueError("device='pin' needs output='torch'")
    if not ragged_format and output != "torch":
        raise ValueError("ragged_format=False (sparse COO tensors) needs output='torch'")


def _torch_column_converter(output: Output) -> Callable:
    torch = _import("torch", "output='torch'")
    from recis.backends.torch.ragged import RaggedTensor

    like = torch.empty(0)
    pinning = output._device != "cpu"
    pinned_tensor = _torch_transfer(output._device).pinned_tensor if pinning else None

    def shared(array: np.ndarray):
        if array.dtype == _BFLOAT16:
            return torch.from_numpy(array.view(np.int16)).view(torch.bfloat16)
        return interop.export_like(array, like)

    def tensor(array: np.ndarray):
        if array.dtype.hasobject:
            return array
        if not pinning:
            return shared(array)
        packed = pinned_tensor(array)  # packed into pinned memory: no copy
        return packed if packed is not None else shared(array).pin_memory()

    def convert(name: str, column, num_rows: int):
        if not isinstance(column, Ragged):
            return tensor(column)
        weights = None if column.weights is None else tensor(column.weights)
        offsets = [tensor(level) for level in column.offsets]
        shape = (num_rows, *[-1] * column.ragged_rank)
        value = RaggedTensor(tensor(column.values), offsets, weights, shape)
        if output._ragged_format:
            return value
        value = _sparse(name, value)
        return value.pin_memory() if pinning else value

    return convert


def _jax_column_converter(output: Output) -> Callable:
    jax = _import("jax", "output='jax'")
    like = jax.numpy.zeros(0)

    def convert(name: str, column, num_rows: int):
        if isinstance(column, Ragged) or column.dtype.hasobject:
            return column
        if column.dtype == _BFLOAT16:
            return jax.numpy.asarray(column)
        if column.dtype.itemsize == 8 and not jax.config.jax_enable_x64:
            raise ValueError(
                f"column {name!r}: JAX would truncate {column.dtype} values to 32 bits; "
                "enable jax_enable_x64 (or choose a 32-bit dtype)"
            )
        return interop.export_like(column, like)

    return convert


_COLUMN_CONVERTERS = {"torch": _torch_column_converter, "jax": _jax_column_converter}


def _sparse(name: str, ragged):
    if len(ragged.offsets()) != 1:
        raise ValueError(f"column {name!r}: ragged_format=False needs one list level")
    return ragged.to_sparse()


def _torch_transfer(device: str):
    """:mod:`recis.backends.torch.io`, once torch sees a CUDA device (``device`` needs one)."""
    torch = _import("torch", "output='torch'")
    if not torch.cuda.is_available():
        raise RuntimeError(f"device={device!r} needs a CUDA device, and torch sees none")
    return importlib.import_module("recis.backends.torch.io")


def _import(module: str, needed_by: str):
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(f"{needed_by} needs {module} installed") from error

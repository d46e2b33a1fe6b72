"""The last step of the pipeline: batches of NumPy arrays and Ragged to the caller's backend.

- ``"numpy"``: unchanged (dense NumPy arrays and :class:`~recis.core.ragged.Ragged`).
- ``"torch"``: tensors sharing the arrays' memory (DLPack), ragged columns as
  :class:`~recis.ragged.tensor.RaggedTensor` (or sparse COO tensors with ``ragged_format=False``);
  ``device="pin"`` copies them into pinned memory, ``device="cuda"`` then to the current GPU.
- ``"jax"``: jax arrays for dense columns (int64 and float64 columns need ``jax_enable_x64``,
  which is checked rather than letting JAX truncate them); ragged columns stay :class:`Ragged`,
  since sparse lookups run outside ``jit``. ``device="cuda"`` puts the arrays on the first GPU.

Object arrays (strings passed through) stay NumPy arrays. Conversion runs on the prefetch
thread; the copy to the GPU runs on the consumer's thread, on its current stream.

>>> convert = Output("numpy", "cpu").convert
>>> convert({"x": np.ones(2)}, 2)["x"].tolist()
[1.0, 1.0]
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import ml_dtypes
import numpy as np

from recis.core import interop
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

    def place(self, columns: dict) -> dict:
        """Move a converted batch to the GPU when ``device="cuda"`` (runs on the consumer)."""
        if self._device != "cuda":
            return columns
        if self._output == "torch":
            return {name: _torch_to_gpu(value) for name, value in columns.items()}
        jax = importlib.import_module("jax")
        gpu = jax.devices("gpu")[0]
        return {
            name: value if isinstance(value, Ragged | np.ndarray) else jax.device_put(value, gpu)
            for name, value in columns.items()
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
    from recis.ragged.tensor import RaggedTensor

    like = torch.empty(0)

    def tensor(array: np.ndarray):
        if array.dtype.hasobject:
            return array
        if array.dtype == _BFLOAT16:
            return torch.from_numpy(array.view(np.int16)).view(torch.bfloat16)
        return interop.export_like(array, like)

    def convert(name: str, column, num_rows: int):
        if isinstance(column, Ragged):
            weights = None if column.weights is None else tensor(column.weights)
            offsets = [tensor(level) for level in column.offsets]
            shape = (num_rows, *[-1] * column.ragged_rank)
            value = RaggedTensor(tensor(column.values), offsets, weights, shape)
            if not output._ragged_format:
                value = _sparse(name, value)
        else:
            value = tensor(column)
        pinned = output._device != "cpu" and not isinstance(value, np.ndarray)
        return value.pin_memory() if pinned else value

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


def _torch_to_gpu(value):
    return value if isinstance(value, np.ndarray) else value.cuda(non_blocking=True)


def _import(module: str, needed_by: str):
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(f"{needed_by} needs {module} installed") from error

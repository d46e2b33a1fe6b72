"""The last step of the pipeline: batches of NumPy arrays and Ragged to the caller's framework.

- ``"numpy"``: unchanged (dense NumPy arrays and :class:`~recis.core.ragged.Ragged`).
- ``"torch"``: tensors sharing the arrays' memory, ragged columns as ``RaggedTensor`` (or sparse
  COO tensors with ``ragged_format=False``); with ``device="pin"`` batches are packed straight
  into pinned memory, and with ``device="cuda"`` they are then copied to the GPU that is current
  when iteration starts, asynchronously on a stream of their own (:mod:`recis.backends.torch.io`).
- ``"jax"``: jax arrays for dense columns (int64 and float64 columns need ``jax_enable_x64``);
  ragged columns stay :class:`Ragged`. ``device="cuda"`` puts the arrays on the first GPU
  (:mod:`recis.backends.jax.io`).

Object arrays (strings passed through) stay NumPy arrays. The framework outputs are converted by
their backends (see :mod:`recis.io.frameworks`), imported when such an :class:`Output` is made.
Conversion runs on the producer (prefetch) thread; a :class:`~recis.io.frameworks.Transfer` per
iteration hands batches from one thread to the other.

>>> convert = Output("numpy", "cpu").convert
>>> convert({"x": [1.0, 2.0]}, 2)["x"]
[1.0, 2.0]
"""

from __future__ import annotations

from recis.io import frameworks
from recis.io.frameworks import Converter, HandOff, Transfer
from recis.io.row_ops import Allocate

DEVICES = ("cpu", "pin", "cuda")


class Output:
    """Converts batches for ``output`` (see the module docstring) and places them on ``device``;
    a framework's output needs that framework installed (ImportError otherwise)."""

    def __init__(self, output: str, device: str, ragged_format: bool = True) -> None:
        check_output(output, device, ragged_format)
        if output != "numpy":
            frameworks.backend(output)
        self._output = output
        self._device = device
        self._ragged_format = ragged_format
        self._converter: Converter | None = None

    def convert(self, columns: dict, num_rows: int) -> dict:
        """Backend arrays for one batch (runs on the producer thread)."""
        return self._backend_converter().convert(columns, num_rows)

    def allocator(self) -> Allocate | None:
        """``allocate(shape, dtype)`` for the packer (pinned memory for torch batches bound for
        the GPU), None (aligned host memory) otherwise."""
        return self._backend_converter().allocator()

    def transfer(self) -> Transfer:
        """A new transfer for one iteration (made on the consumer's thread, whose current GPU
        receives the batches)."""
        return self._backend_converter().transfer()

    def handoff(self) -> HandOff:
        """A new hand-off of transformed batches for one iteration (made on the consumer's
        thread)."""
        return self._backend_converter().handoff()

    def __getstate__(self) -> dict:
        return self.__dict__ | {"_converter": None}  # rebuilt after unpickling

    def _backend_converter(self) -> Converter:
        if self._converter is None:
            if self._output == "numpy":
                self._converter = Converter()
            else:
                make = frameworks.backend(self._output).converter
                self._converter = make(self._device, self._ragged_format)
        return self._converter


def check_output(output: str, device: str, ragged_format: bool) -> None:
    """Raise ``ValueError`` for an unknown or unsupported combination (importing nothing)."""
    outputs = ("numpy", *frameworks.PLUGINS)
    if output not in outputs:
        raise ValueError(f"output: expected one of {outputs}, got {output!r}")
    if device not in DEVICES:
        raise ValueError(f"device: expected one of {DEVICES}, got {device!r}")
    plugins = frameworks.PLUGINS
    if output == "numpy" and device != "cpu":
        raise ValueError(f"device={device!r} needs output={_either(plugins)}")
    if output != "numpy" and device not in plugins[output].devices:
        able = [name for name, plugin in plugins.items() if device in plugin.devices]
        raise ValueError(f"device={device!r} needs output={_either(able)}")
    if not ragged_format and not (output in plugins and plugins[output].sparse):
        able = [name for name, plugin in plugins.items() if plugin.sparse]
        raise ValueError(f"ragged_format=False (sparse COO tensors) needs output={_either(able)}")


def _either(names) -> str:
    return " or ".join(repr(name) for name in names)

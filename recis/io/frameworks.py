"""What a framework's backend supplies to the datasets, and where each backend is found.

Datasets produce NumPy arrays and :class:`~recis.core.ragged.Ragged`; ``output="numpy"`` hands
them over as they are (the base :class:`Converter`). Every other output is named after the
package it converts to, and converted by the IO module of that framework's backend, which
exposes a :class:`Backend` as ``IO_BACKEND``. :data:`PLUGINS` names those modules by string:
one is imported only when its output is requested, or when its framework is already imported
(so that, for example, datasets work under torch's DataLoader), and this package imports no
framework itself.

>>> converter = Converter()
>>> converter.convert({"x": np.ones(2)}, 2)["x"].tolist(), converter.allocator()
([1.0, 1.0], None)
>>> PLUGINS["jax"].devices
('cpu', 'cuda')
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from recis.io.row_ops import Allocate


@dataclass(frozen=True)
class Plugin:
    """Where an output's backend lives, and what it supports (known without importing it):
    the ``device`` values, and sparse COO tensors (``ragged_format=False``)."""

    module: str
    devices: tuple[str, ...]
    sparse: bool = False


PLUGINS: dict[str, Plugin] = {
    "torch": Plugin("recis.backends.torch.io", ("cpu", "pin", "cuda"), sparse=True),
    "jax": Plugin("recis.backends.jax.io", ("cpu", "cuda")),
}


class Transfer:
    """Hands converted batches from the producer to the consumer: :meth:`send` runs on the
    producer thread, :meth:`receive` on the consumer's. This one hands them over as they are."""

    def send(self, columns: dict):
        return columns

    def receive(self, sent) -> dict:
        return sent


class HandOff:
    """Runs the user's functions on the transform thread (:meth:`send`) and gives the consumer
    their result (:meth:`receive`). This one gives it as it is."""

    def send(self, finish: Callable[[], object]):
        return finish()

    def receive(self, sent):
        return sent


class Converter:
    """The conversion of batches for one output and device. This one is ``output="numpy"``'s:
    it changes nothing; a backend's converter overrides what its framework needs."""

    def convert(self, columns: dict, num_rows: int) -> dict:
        """Backend arrays for one batch (runs on the producer thread)."""
        return columns

    def allocator(self) -> Allocate | None:
        """``allocate(shape, dtype)`` for the packer (e.g. pinned memory); None: aligned host
        memory."""
        return None

    def transfer(self) -> Transfer:
        """A new :class:`Transfer` for one iteration (made on the consumer's thread)."""
        return Transfer()

    def handoff(self) -> HandOff:
        """A new :class:`HandOff` for one iteration (made on the consumer's thread)."""
        return HandOff()


def _no_shard() -> None:
    return None


def _adopt_nothing(dataset_class: type) -> None:
    return None


@dataclass(frozen=True)
class Backend:
    """What a framework's backend supplies: ``converter(device, ragged_format)``; the NumPy
    dtype of one of the framework's dtype objects; ``adopt_dataset(cls)``, called for every
    dataset class once the framework is imported (e.g. to register it as the framework's
    dataset type); ``worker_shard()``, the (index, count) of the framework's data-loading
    sub-worker running this code, or None."""

    converter: Callable[[str, bool], Converter]
    numpy_dtype: Callable[[object], np.dtype] = np.dtype
    adopt_dataset: Callable[[type], None] = _adopt_nothing
    worker_shard: Callable[[], tuple[int, int] | None] = _no_shard


def backend(output: str) -> Backend:
    """The backend of ``output`` (imported now); an ImportError names a missing package."""
    try:
        module = importlib.import_module(PLUGINS[output].module)
    except ImportError as error:
        package = (error.name or "recis").partition(".")[0]
        if package == "recis":
            raise
        raise ImportError(f"output={output!r} needs {package} installed") from error
    return module.IO_BACKEND


def loaded_backends() -> list[Backend]:
    """The backends of the frameworks imported so far (none is imported for this)."""
    return [backend(name) for name in PLUGINS if sys.modules.get(name) is not None]


def numpy_dtype(dtype):
    """``dtype`` as NumPy understands it: a framework's dtype object through its backend,
    anything else unchanged.

    >>> numpy_dtype("float16")
    'float16'
    """
    package = type(dtype).__module__.partition(".")[0]
    return backend(package).numpy_dtype(dtype) if package in PLUGINS else dtype

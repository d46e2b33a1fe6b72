"""The JAX side of :mod:`recis.io`: dense columns as jax arrays, ragged columns left as they are.

Dense columns become jax arrays sharing the NumPy arrays' memory (DLPack); int64 and float64
columns need ``jax_enable_x64``, which is checked rather than letting JAX truncate them to 32
bits. Ragged columns stay :class:`~recis.core.ragged.Ragged`, since sparse lookups run outside
``jit``, and object arrays (strings) stay NumPy arrays. With ``device="cuda"`` the dense arrays
are put on the first GPU as the consumer receives them.

>>> batch = JaxConverter("cpu", True).convert({"x": np.ones(2, np.float32)}, 2)
>>> isinstance(batch["x"], jax.Array), batch["x"].tolist()
(True, [1.0, 1.0])
"""

from __future__ import annotations

import jax
import ml_dtypes
import numpy as np

from recis.core import arrays as interop
from recis.core.ragged import Ragged
from recis.io.frameworks import Backend, Converter, Transfer

_BFLOAT16 = np.dtype(ml_dtypes.bfloat16)


class JaxConverter(Converter):
    """Batches with jax arrays (see the module docstring), for ``device`` "cpu" or "cuda"."""

    def __init__(self, device: str, ragged_format: bool) -> None:
        self._device = device
        self._like = jax.numpy.zeros(0)

    def convert(self, columns: dict, num_rows: int) -> dict:
        return {name: self._column(name, column) for name, column in columns.items()}

    def transfer(self) -> Transfer:
        return ToGpu() if self._device == "cuda" else Transfer()

    def _column(self, name: str, column):
        if isinstance(column, Ragged) or column.dtype.hasobject:
            return column
        if column.dtype == _BFLOAT16:
            return jax.numpy.asarray(column)
        if column.dtype.itemsize == 8 and not jax.config.jax_enable_x64:
            raise ValueError(
                f"column {name!r}: JAX would truncate {column.dtype} values to 32 bits; "
                "enable jax_enable_x64 (or choose a 32-bit dtype)"
            )
        return interop.export_like(column, self._like)


class ToGpu(Transfer):
    """Puts dense jax arrays on the first GPU as the consumer receives them."""

    def receive(self, sent) -> dict:
        gpu = jax.devices("gpu")[0]
        return {
            name: value if isinstance(value, Ragged | np.ndarray) else jax.device_put(value, gpu)
            for name, value in sent.items()
        }


IO_BACKEND = Backend(JaxConverter)

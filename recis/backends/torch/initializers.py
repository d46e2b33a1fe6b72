"""RecIS's initializer classes for embedding tables, with RecIS's protocol.

Each class is the engine's per-id initializer (:mod:`recis.core.initializers`), so a table's
rows start at a pure function of (seed, table, id), and also follows RecIS's protocol:
``set_shape``, ``set_dtype``, ``build`` (once; a second call raises ``RuntimeError``), ``impl``
and ``generate``, which returns a tensor of the set shape and dtype. ``generate`` fills a
``[rows, dim]`` matrix (``dim`` the last entry of the shape, ``rows`` the product of the others)
with the values that ids ``0 .. rows-1`` get, Xavier and Kaiming fans being those of that
matrix. RecIS's optional ``generator`` (a ``torch.Generator``) gives the seed: its
``initial_seed()``. ``str()`` is RecIS's JSON description.

>>> import torch
>>> init = TruncNormalInitializer(std=0.01, generator=torch.Generator().manual_seed(7))
>>> init.seed, init.config()["type"]
(7, 'TruncNormalInitializer')
>>> init.set_shape([3, 4])
>>> init.set_dtype(torch.float16)
>>> init.build()
>>> tensor = init.generate()
>>> tensor.shape, tensor.dtype, bool(tensor.abs().max() <= 0.02)
(torch.Size([3, 4]), torch.float16, True)
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import torch

from recis.core import initializers as core

__all__ = [
    "ConstantInitializer",
    "Initializer",
    "KaimingNormalInitializer",
    "KaimingUniformInitializer",
    "NormalInitializer",
    "TruncNormalInitializer",
    "UniformInitializer",
    "XavierNormalInitializer",
    "XavierUniformInitializer",
]

GENERATE_TABLE = "generate"  # the table name whose per-id values generate() returns


class Initializer:
    """RecIS's initializer protocol (see the module docstring), over an engine initializer.

    The concrete classes below derive from it and from their engine class; a class deriving
    only from this one must implement ``build`` and ``generate`` itself, and cannot initialise
    table rows.
    """

    def __init__(self, generator: torch.Generator | None = None, shape=None, dtype=None):
        self._set("seed", None if generator is None else generator.initial_seed())
        self._set("_impl", None)
        self._set("_shape", None if shape is None else list(shape))
        self._set("_dtype", torch.float32 if dtype is None else dtype)

    def _set(self, name: str, value) -> None:
        object.__setattr__(self, name, value)  # the engine classes are frozen dataclasses

    def set_shape(self, shape=None) -> None:
        """The shape of the tensor :meth:`generate` returns (and that fans come from)."""
        self._set("_shape", None if shape is None else [int(n) for n in shape])

    def set_dtype(self, dtype: torch.dtype = torch.float32) -> None:
        """The dtype of the tensor :meth:`generate` returns."""
        self._set("_dtype", dtype)

    def build(self) -> None:
        """Prepare :meth:`generate` for the set shape; raises ``RuntimeError`` the second time."""
        if self._impl is not None:
            raise RuntimeError("rebuild initializer")
        if not self._shape:
            raise RuntimeError(f"{type(self).__name__}: call set_shape before build")
        self._set("_impl", self._engine(_rows(self._shape)))

    def impl(self):
        """What :meth:`build` made (an engine initializer), or None before it."""
        return self._impl

    def generate(self) -> torch.Tensor:
        """A tensor of the set shape and dtype (float32 unless set), filled per row index."""
        if self._impl is None:
            raise RuntimeError("build method is not called.")
        ids = np.arange(_rows(self._shape), dtype=np.int64)
        values = self._impl(ids, self._shape[-1], self.seed or 0, GENERATE_TABLE)
        return torch.from_numpy(values).reshape(self._shape).to(self._dtype)

    def _engine(self, rows: int) -> core.Initializer:
        """The engine initializer of :meth:`generate`, its fans those of ``rows`` rows."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if "fan_rows" in fields:
            fields["fan_rows"] = rows
        return core.INITIALIZERS[type(self).__name__](**fields)

    def __str__(self) -> str:
        config = self.config()
        info = {**config, "shape": str(self._shape), "dtype": str(self._dtype)}
        if not isinstance(self, core.ConstantInitializer):
            info["generator_seed"] = self.seed
        return json.dumps(info, sort_keys=True)


def _rows(shape: list[int]) -> int:
    """Rows of the ``[rows, shape[-1]]`` matrix a shape is filled as."""
    return math.prod(shape[:-1])


class ConstantInitializer(core.ConstantInitializer, Initializer):
    """Every element is ``init_val``."""

    def __init__(self, init_val: float = 0.0, dtype: torch.dtype = torch.float32, generator=None):
        core.ConstantInitializer.__init__(self, init_val)
        Initializer.__init__(self, generator, dtype=dtype)


class UniformInitializer(core.UniformInitializer, Initializer):
    """Uniform on [a, b)."""

    def __init__(self, a: float = 0.0, b: float = 1.0, generator=None):
        core.UniformInitializer.__init__(self, a, b)
        Initializer.__init__(self, generator)


class NormalInitializer(core.NormalInitializer, Initializer):
    """Normal(mean, std)."""

    def __init__(self, mean: float = 0.0, std: float = 1.0, generator=None):
        core.NormalInitializer.__init__(self, mean, std)
        Initializer.__init__(self, generator)


class TruncNormalInitializer(core.TruncNormalInitializer, Initializer):
    """Normal(mean, std) within the bounds [a, b]."""

    def __init__(self, mean=0.0, std=1.0, a=-2.0, b=2.0, generator=None):
        core.TruncNormalInitializer.__init__(self, mean, std, a, b)
        Initializer.__init__(self, generator)


class XavierUniformInitializer(core.XavierUniformInitializer, Initializer):
    """Xavier (Glorot) uniform; table rows use fans of ``fan_rows`` rows."""

    def __init__(self, gain=1.0, generator=None, fan_rows: int = core.DEFAULT_FAN_ROWS):
        core.XavierUniformInitializer.__init__(self, gain, fan_rows)
        Initializer.__init__(self, generator)


class XavierNormalInitializer(core.XavierNormalInitializer, Initializer):
    """Xavier (Glorot) normal; table rows use fans of ``fan_rows`` rows."""

    def __init__(self, gain=1.0, generator=None, fan_rows: int = core.DEFAULT_FAN_ROWS):
        core.XavierNormalInitializer.__init__(self, gain, fan_rows)
        Initializer.__init__(self, generator)


class KaimingUniformInitializer(core.KaimingUniformInitializer, Initializer):
    """Kaiming (He) uniform; table rows use fans of ``fan_rows`` rows."""

    def __init__(
        self,
        a=0.0,
        mode="fan_in",
        nonlinearity="leaky_relu",
        generator=None,
        fan_rows: int = core.DEFAULT_FAN_ROWS,
    ):
        core.KaimingUniformInitializer.__init__(self, a, mode, nonlinearity, fan_rows)
        Initializer.__init__(self, generator)


class KaimingNormalInitializer(core.KaimingNormalInitializer, Initializer):
    """Kaiming (He) normal; ``shape`` and ``dtype`` come first, as in RecIS."""

    def __init__(
        self,
        shape=None,
        dtype=torch.float32,
        a=0.0,
        mode="fan_in",
        nonlinearity="leaky_relu",
        generator=None,
        fan_rows: int = core.DEFAULT_FAN_ROWS,
    ):
        core.KaimingNormalInitializer.__init__(self, a, mode, nonlinearity, fan_rows)
        Initializer.__init__(self, generator, shape, dtype)

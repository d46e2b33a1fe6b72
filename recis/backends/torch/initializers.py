"""RecIS's initializer classes for embedding tables.

They are the engine's per-id initializers (:mod:`recis.core.initializers`) and also accept RecIS's
optional ``generator`` argument: a ``torch.Generator`` whose ``initial_seed()`` becomes the seed of
the table's counter-based generator.

>>> import torch
>>> init = TruncNormalInitializer(std=0.01, generator=torch.Generator().manual_seed(7))
>>> init.seed, init.config()["type"]
(7, 'TruncNormalInitializer')
"""

from __future__ import annotations

from recis.core import initializers as core

__all__ = [
    "ConstantInitializer",
    "KaimingNormalInitializer",
    "KaimingUniformInitializer",
    "NormalInitializer",
    "TruncNormalInitializer",
    "UniformInitializer",
    "XavierNormalInitializer",
    "XavierUniformInitializer",
]


def _accepting_generator(engine_class: type) -> type:
    """A subclass of ``engine_class`` whose constructor also takes ``generator``."""

    def __init__(self, *args, generator=None, **kwargs):
        engine_class.__init__(self, *args, **kwargs)
        object.__setattr__(self, "seed", None if generator is None else generator.initial_seed())

    return type(
        engine_class.__name__, (engine_class,), {"__init__": __init__, "__module__": __name__}
    )


ConstantInitializer = _accepting_generator(core.ConstantInitializer)
UniformInitializer = _accepting_generator(core.UniformInitializer)
NormalInitializer = _accepting_generator(core.NormalInitializer)
TruncNormalInitializer = _accepting_generator(core.TruncNormalInitializer)
XavierUniformInitializer = _accepting_generator(core.XavierUniformInitializer)
XavierNormalInitializer = _accepting_generator(core.XavierNormalInitializer)
KaimingUniformInitializer = _accepting_generator(core.KaimingUniformInitializer)
KaimingNormalInitializer = _accepting_generator(core.KaimingNormalInitializer)

"""RecIS's import path for :mod:`recis.backends.torch.initializers`."""

from recis.backends.torch.initializers import (
    ConstantInitializer,
    Initializer,
    KaimingNormalInitializer,
    KaimingUniformInitializer,
    NormalInitializer,
    TruncNormalInitializer,
    UniformInitializer,
    XavierNormalInitializer,
    XavierUniformInitializer,
)

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

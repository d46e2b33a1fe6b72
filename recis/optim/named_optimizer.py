"""RecIS's import path for :mod:`recis.backends.torch.optim.named_optimizer`."""

from recis.backends.torch.optim.named_optimizer import (
    NamedAdagrad,
    NamedAdam,
    NamedAdamW,
    NamedAdamWTF,
    NamedSGD,
    wrapped_named_optimizer,
)

__all__ = [
    "NamedAdagrad",
    "NamedAdam",
    "NamedAdamW",
    "NamedAdamWTF",
    "NamedSGD",
    "wrapped_named_optimizer",
]

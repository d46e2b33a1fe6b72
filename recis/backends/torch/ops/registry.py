"""Declaring an op of the ``recis`` namespace once: schema, kernel, fake kernel.

RecIS declares its ops from C++ signatures, so their arguments are positional and named ``_0``,
``_1``, …; ours keep those names, types and order (:data:`torch.ops.recis.gather._schema` reads
the same), and add the alias marks (``Tensor(a!)``) of the arguments an op writes to, which
``torch.compile`` needs to order the writes.

>>> import torch
>>> str(torch.ops.recis.gather.default._schema)
'recis::gather(Tensor _0, Tensor _1) -> Tensor'
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch

NAMESPACE = "recis"
_LIBRARY = torch.library.Library(NAMESPACE, "FRAGMENT")
OP_NAMES: list[str] = []  # the ops defined here, in order


def recis_op(schema: str, fake: Callable) -> Callable[[Callable], Callable]:
    """Decorator: define ``recis::<schema>`` with the decorated function as its kernel on every
    device, and ``fake`` as its meta kernel (shapes and dtypes only, for ``torch.compile``).

    The kernel is registered as ``CompositeExplicitAutograd``: one Python function serves CPU
    and CUDA tensors (it dispatches on the tensors' device itself).
    """

    def register(kernel: Callable) -> Callable:
        name = schema.split("(", 1)[0]
        _LIBRARY.define(schema)
        OP_NAMES.append(name)
        _LIBRARY.impl(name, kernel, "CompositeExplicitAutograd")
        torch.library.register_fake(f"{NAMESPACE}::{name}", fake, lib=_LIBRARY)
        return kernel

    return register


def dynamic_size() -> torch.SymInt:
    """A size only known once the op has run (in a fake kernel)."""
    return torch.library.get_ctx().new_dynamic_size()


def on_engine(kernel: Callable) -> Callable:
    """Decorator: run ``kernel`` beside torch (:func:`recis.backends.torch.bridge.beside_torch`).

    The bridge and the engine load on the first call, not at registration, so that registering
    the ops costs ``import recis`` next to nothing.
    """

    @functools.wraps(kernel)
    def run(*args):
        from recis.backends.torch.bridge import beside_torch

        return beside_torch(kernel)(*args)

    return run

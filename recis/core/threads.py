"""How many threads the engine's CPU kernels use.

numba runs parallel kernels on its own OpenMP thread pool. When a framework runs its own pool on
the same cores — torch does, for the dense model — the two pools spin-wait for each other and a
training step gets several times slower. The framework front ends therefore run the engine's
kernels inside :func:`kernel_threads` with :func:`framework_kernel_threads` threads: 1 by default
(the dense model keeps the cores), or ``RECIS_ENGINE_THREADS`` from the environment. Used alone,
the engine uses every core.

Both pools are OpenMP pools, and an OpenMP thread that has finished its share keeps spinning for a
while before it sleeps. Two pools on the same cores then take turns burning each other's time; on a
busy machine a step gets several times slower. ``import recis`` therefore asks OpenMP pools that
start later to sleep at once (``OMP_WAIT_POLICY=PASSIVE``), unless the environment already says
otherwise. Pools started before (torch's, when torch is imported first) keep their policy.

>>> with kernel_threads(1):
...     numba.get_num_threads()
1
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from contextlib import contextmanager

import numba


@contextmanager
def kernel_threads(count: int) -> Iterator[None]:
    """Run the engine's kernels called in this block on ``count`` threads (this thread only)."""
    previous = numba.get_num_threads()
    numba.set_num_threads(max(1, min(count, numba.config.NUMBA_NUM_THREADS)))
    try:
        yield
    finally:
        numba.set_num_threads(previous)


def framework_kernel_threads() -> int:
    """Kernel threads beside a framework's own pool: ``RECIS_ENGINE_THREADS``, default 1."""
    return int(os.environ.get("RECIS_ENGINE_THREADS", "1"))


def beside_framework(function):
    """Decorator: run ``function`` with :func:`framework_kernel_threads` kernel threads."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with kernel_threads(framework_kernel_threads()):
            return function(*args, **kwargs)

    return wrapper

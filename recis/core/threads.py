"""How many threads the engine's CPU kernels use, and how they wait.

numba runs parallel kernels on its own OpenMP thread pool, beside a framework's pool on the same
cores (torch's, for the dense model). An idle OpenMP thread keeps spinning for a while before it
sleeps, so two pools burn each other's time and a step gets several times slower (worst on a busy
machine). The engine therefore starts numba's pool with idle threads that sleep at once
(:func:`start_kernel_pool`, run when the kernels are imported) unless ``OMP_WAIT_POLICY`` is set,
leaving the environment, and so the framework's pool, as it was. Where torch was imported first,
numba's parallel regions bind to the OpenMP runtime torch loaded, which has read its settings
already: there only ``OMP_WAIT_POLICY=PASSIVE`` set before Python starts makes idle threads
sleep. The framework front ends run the engine's kernels inside :func:`kernel_threads` with
:func:`framework_kernel_threads` threads: every core by default, or ``RECIS_ENGINE_THREADS``.

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
    """Kernel threads beside a framework's own pool: ``RECIS_ENGINE_THREADS``, default all."""
    return int(os.environ.get("RECIS_ENGINE_THREADS", numba.config.NUMBA_NUM_THREADS))


def start_kernel_pool() -> None:
    """Start numba's thread pool with OpenMP threads that sleep as soon as they are idle, unless
    ``OMP_WAIT_POLICY`` says otherwise; the environment is left as it was (module docstring)."""
    if "OMP_WAIT_POLICY" in os.environ:
        return
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    try:
        numba.get_num_threads()  # starts the pool, whose OpenMP runtime reads the policy once
    finally:
        del os.environ["OMP_WAIT_POLICY"]


def beside_framework(function):
    """Decorator: run ``function`` with :func:`framework_kernel_threads` kernel threads."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with kernel_threads(framework_kernel_threads()):
            return function(*args, **kwargs)

    return wrapper

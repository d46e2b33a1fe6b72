"""Where the GPU engine's device memory comes from: one stream-ordered pool shared with the
framework.

By default CuPy allocates from its own pool. A framework with a caching allocator of its own
hands it to the engine with :func:`share_pool`: CuPy then allocates every array (tables, per-step
buffers) through it, on CuPy's current stream at the time of the allocation, and frees each
block to the stream it was allocated on. Engine work runs on the caller's stream
(:func:`recis.core.cuda.streams.on_stream`), so its memory is allocated, used and freed on that
one stream, and a framework that reuses a freed block only on its stream never hands the engine's
memory to other work while the engine's kernels may still use it. There is one pool for the
framework and the engine, not two holding memory apart.

The torch front end shares torch's caching allocator this way. Importing this module does not
import CuPy:

>>> shared_pool() is None
True
"""

from __future__ import annotations

from collections.abc import Callable

from recis.core.cuda.loader import require_cupy

Malloc = Callable[[int, int, int], int]  # (bytes, device, stream) -> address
Free = Callable[[int, int, int], None]  # (address, device, stream)
_shared: tuple[str, object] | None = None


def share_pool(owner: str, malloc: Malloc, free: Free) -> None:
    """Make CuPy allocate through ``owner``'s allocator: ``malloc(bytes, device, stream)``
    returns a device address allocated for use on ``stream`` (a raw ``cudaStream_t``), ``free``
    gives it back. Sharing again with the same owner does nothing; another owner is an error."""
    global _shared
    if _shared is not None:
        if _shared[0] != owner:
            raise RuntimeError(f"the GPU engine already allocates from {_shared[0]}'s pool")
        return
    cupy = require_cupy(f"sharing {owner}'s GPU memory pool")
    allocator = cupy.cuda.memory.PythonFunctionAllocator(malloc, free)
    cupy.cuda.set_allocator(allocator.malloc)
    _shared = (owner, allocator)


def shared_pool() -> str | None:
    """The owner of the pool CuPy allocates from, or None for CuPy's own."""
    return None if _shared is None else _shared[0]


def restore_cupy_pool() -> None:
    """Make CuPy allocate from its own pool again (memory allocated so far stays valid)."""
    global _shared
    if _shared is not None:
        cupy = require_cupy("restoring CuPy's memory pool")
        cupy.cuda.set_allocator(cupy.get_default_memory_pool().malloc)
        _shared = None

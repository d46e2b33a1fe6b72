"""Running engine kernels on the caller's CUDA stream.

Engine kernels launch on CuPy's current stream. A torch caller makes its own stream current with
:func:`on_stream` (``torch.cuda.current_stream().cuda_stream`` is the raw ``cudaStream_t``), so
engine work is ordered with its own without any synchronisation. JAX arrays enter through
``cupy.from_dlpack``, whose DLPack stream protocol makes the producer's pending work visible on
CuPy's current stream; nothing more is needed there.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from recis.core.cuda.loader import require_cupy


@contextmanager
def on_stream(stream_ptr: int) -> Iterator[None]:
    """Make the external CUDA stream ``stream_ptr`` (a raw ``cudaStream_t``) CuPy's current
    stream inside the ``with`` block; the previous one is current again afterwards.

    0 names the legacy default stream.
    """
    if not isinstance(stream_ptr, int) or stream_ptr < 0:
        raise TypeError(
            f"stream_ptr must be a cudaStream_t as a non-negative int, got {stream_ptr!r}"
        )
    cupy = require_cupy("running on an external CUDA stream")
    stream = cupy.cuda.ExternalStream(stream_ptr)
    with stream:
        yield

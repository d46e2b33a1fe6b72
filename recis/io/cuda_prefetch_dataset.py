"""RecIS's import path for :mod:`recis.backends.torch.cuda_prefetch`."""

from recis.backends.torch.cuda_prefetch import (
    _CLOSE_TIMEOUT,
    _GATE_FALLBACK_TIMEOUT,
    _MAX_COLLECT_DEPTH,
    StreamPriority,
    _CudaPrefetchIterator,
    _holdables_of,
    _InlinePrefetchIterator,
    cuda_prefetch_iterator,
)

__all__ = [
    "_CLOSE_TIMEOUT",
    "_GATE_FALLBACK_TIMEOUT",
    "_MAX_COLLECT_DEPTH",
    "StreamPriority",
    "_CudaPrefetchIterator",
    "_InlinePrefetchIterator",
    "_holdables_of",
    "cuda_prefetch_iterator",
]

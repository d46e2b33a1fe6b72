"""RecIS's pipeline-prefetch helpers: find the transform, wrap an iterator, notify and close it.

:func:`setup_pipeline_prefetch` resolves the per-batch transform — ``pipeline_prefetch_fn``, or
the ``prefetch_step`` of the model or one of its submodules (a child named ``sparse`` first) —
into a function of RecIS's ``(is_end, batch)`` pairs; :func:`wrap_with_prefetch` runs it ahead of
the training step (:mod:`recis.backends.torch.cuda_prefetch`), :func:`notify_prefetch` releases
the next batch's transform and :func:`close_prefetch` closes an iterator without hiding an
exception that is already on its way.

>>> transform, size = setup_pipeline_prefetch(None, False, True, pipeline_prefetch_fn=abs)
>>> transform((False, -3)), transform((True, None)), size
((False, 3), (True, None), 1)
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from torch import nn

from recis.backends.torch.cuda_prefetch import StreamPriority, cuda_prefetch_iterator
from recis.utils.data_utils import copy_data_to_device
from recis.utils.logger import Logger

logger = Logger(__name__)

PREFETCH_BEFORE_FORWARD = "before_forward"
PREFETCH_AFTER_SPARSE_FORWARD = "after_sparse_forward"
PREFETCH_BEFORE_BACKWARD = "before_backward"
PREFETCH_BEFORE_OPTIM_STEP = "before_optim_step"
PREFETCH_NOTIFY_POSITIONS = (
    PREFETCH_BEFORE_FORWARD,
    PREFETCH_AFTER_SPARSE_FORWARD,
    PREFETCH_BEFORE_BACKWARD,
    PREFETCH_BEFORE_OPTIM_STEP,
)


@dataclass
class PrefetchArguments:
    """Pipeline-prefetch options: on (an int > 0 also sets the buffer size), the transform, the
    side stream's priority, where in the step the next transform is released
    (:data:`PREFETCH_NOTIFY_POSITIONS`), and whether a worker thread transforms (and fetches)."""

    enable_pipeline_prefetch: bool | int = False
    pipeline_prefetch_fn: Callable | None = None
    stream_priority: int = StreamPriority.LOW
    notify_position: str = PREFETCH_BEFORE_BACKWARD
    enable_thread_prefetch: bool = True
    fetch_data_in_thread: bool = False

    def __post_init__(self) -> None:
        if self.notify_position not in PREFETCH_NOTIFY_POSITIONS:
            raise ValueError(
                f"notify_position must be one of {PREFETCH_NOTIFY_POSITIONS}, "
                f"got {self.notify_position!r}"
            )
        if self.fetch_data_in_thread and not self.enable_thread_prefetch:
            raise ValueError("fetch_data_in_thread needs enable_thread_prefetch")


def resolve_prefetch_model(model: nn.Module | None, _visited: set | None = None):
    """The first module (depth first, a child named ``sparse`` before the others, a wrapper's
    ``module`` last) with a callable ``prefetch_step``; None if there is none."""
    if model is None:
        return None
    visited = set() if _visited is None else _visited
    if id(model) in visited:
        return None
    visited.add(id(model))
    if callable(getattr(model, "prefetch_step", None)):
        return model
    children = sorted(model.named_children(), key=lambda item: item[0] != "sparse")
    wrapped = getattr(model, "module", None)
    if wrapped is not None and all(name != "module" for name, _ in children):
        children.append(("module", wrapped))
    for _, child in children:
        found = resolve_prefetch_model(child, visited) if isinstance(child, nn.Module) else None
        if found is not None:
            return found
    return None


def make_pipeline_prefetch_transform(prefetch_fn: Callable, data_to_cuda: bool) -> Callable:
    """``(is_end, batch) -> (is_end, prefetch_fn(batch))``; the batch is first copied to the GPU
    with ``data_to_cuda``; end markers pass unchanged."""

    def transform(item):
        is_end, data = item
        if is_end:
            return is_end, data
        if data_to_cuda:
            data = copy_data_to_device(data, "cuda", non_blocking=True)
        return is_end, prefetch_fn(data)

    return transform


def setup_pipeline_prefetch(
    model: nn.Module | None,
    data_to_cuda: bool,
    enable_pipeline_prefetch: bool | int = False,
    pipeline_prefetch_fn: Callable | None = None,
) -> tuple[Callable | None, int]:
    """``(transform or None, buffer_size)`` (see the module docstring); ``TypeError`` when
    prefetch is on and neither a function nor a ``prefetch_step`` is found."""
    enabled = bool(enable_pipeline_prefetch)
    is_count = isinstance(enable_pipeline_prefetch, int) and not isinstance(
        enable_pipeline_prefetch, bool
    )
    buffer_size = enable_pipeline_prefetch if is_count and enable_pipeline_prefetch > 0 else 1
    if not enabled:
        return None, buffer_size
    if pipeline_prefetch_fn is not None:
        return make_pipeline_prefetch_transform(pipeline_prefetch_fn, data_to_cuda), buffer_size
    found = resolve_prefetch_model(model)
    if found is None:
        raise TypeError(
            "enable_pipeline_prefetch needs a module with prefetch_step() or a "
            f"pipeline_prefetch_fn; got {type(model).__name__ if model is not None else None}"
        )
    return make_pipeline_prefetch_transform(found.prefetch_step, data_to_cuda), buffer_size


def wrap_with_prefetch(
    iterator: Iterator | None,
    transform: Callable | None,
    buffer_size: int = 1,
    lazy_start: bool = False,
    stream_priority: int = StreamPriority.LOW,
    enable_thread: bool = True,
    fetch_in_thread: bool = False,
):
    """``iterator`` with ``transform`` run ahead of the consumer (unchanged without one)."""
    if transform is None or iterator is None:
        return iterator
    return cuda_prefetch_iterator(
        iterator,
        transform,
        buffer_size=buffer_size,
        lazy_start=lazy_start,
        stream_priority=stream_priority,
        enable_thread=enable_thread,
        fetch_in_thread=fetch_in_thread,
    )


def notify_prefetch(prefetch_iter) -> None:
    """Release the next batch's transform (a no-op for an iterator without ``notify``)."""
    if prefetch_iter is not None and hasattr(prefetch_iter, "notify"):
        prefetch_iter.notify()


def close_prefetch(prefetch_iter) -> None:
    """Close ``prefetch_iter`` if it has a ``close``. While an exception is being handled, a
    failure to close is logged instead of raised, so that it cannot replace that exception."""
    handling = sys.exc_info()[0] is not None
    close = getattr(prefetch_iter, "close", None)
    if not callable(close):
        return
    try:
        close()
    except Exception as error:
        if not handling:
            raise
        logger.error(f"prefetch cleanup failed while handling another error: {error!r}")

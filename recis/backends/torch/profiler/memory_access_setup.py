"""``setup_memory_access_tracking``: every ``torch.ops.recis`` op and ``HashTable.forward``
tracked by :class:`~recis.utils.profiler.memory_access.MemoryAccessTracker` (RecIS API).

The formula is the same for all of them: the bytes of every tensor the call reads (its tensor
arguments, lists included) plus those of every tensor it returns — the traffic of one pass over
the data, not a model of caches (RecIS fits per-op formulas to NCU measurements of its CUDA
kernels; ours run elsewhere).

>>> import torch
>>> setup_memory_access_tracking()
>>> values = [torch.tensor([1.0, 2.5, 3.0])]
>>> with MemoryAccessTracker.context("bucketize") as ctx:
...     _ = torch.ops.recis.fused_bucketized(values, [torch.tensor([1.5, 2.5])])
>>> ctx.summary()["ops"]["fused_bucketized"]["bytes"]  # 12 + 8 read, 3 int64 written
44
"""

from __future__ import annotations

import torch

import recis.backends.torch.ops  # noqa: F401 (defines the ops)
from recis.backends.torch.hashtable import HashTable
from recis.backends.torch.ops.registry import OP_NAMES
from recis.backends.torch.profiler.memory_access import MemoryAccessTracker


def tensor_bytes(value) -> int:
    """Bytes of the tensors in ``value`` (a tensor, or nested lists/tuples/dicts of them)."""
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, list | tuple):
        return sum(tensor_bytes(v) for v in value)
    if isinstance(value, dict):
        return sum(tensor_bytes(v) for v in value.values())
    return 0


def read_and_written(args, kwargs, output) -> int:
    """The one-pass formula of the module docstring."""
    return tensor_bytes(args) + tensor_bytes(kwargs) + tensor_bytes(output)


def _lookup_formula(args, kwargs, output) -> int:
    """``HashTable.forward(self, ids)``: ids read, rows written (the module is not data)."""
    return tensor_bytes(args[1:]) + tensor_bytes(kwargs) + tensor_bytes(output)


def setup_memory_access_tracking() -> None:
    """Register every ``torch.ops.recis`` op and ``HashTable.forward`` (idempotent)."""
    for name in OP_NAMES:
        MemoryAccessTracker.register_operator(torch.ops.recis, name)
        MemoryAccessTracker.register_formula_direct(name, read_and_written)
    MemoryAccessTracker.wrap_class_method(HashTable, "forward")
    MemoryAccessTracker.register_formula_direct("HashTable.forward", _lookup_formula)

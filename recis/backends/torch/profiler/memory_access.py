"""``MemoryAccessTracker``: bytes read and written by chosen ops and methods (RecIS API).

An op is registered with a *formula* — ``formula(args, kwargs, output) -> bytes`` — and a place
to patch (a module or class attribute). Inside ``MemoryAccessTracker.context(name)`` the
registered ops are patched with a wrapper that times each call and adds the formula's bytes to
the context; outside a context the originals run untouched. Calls on CUDA are timed with CUDA
events read once when the context ends (no synchronisation per call); others with the host
clock. ``summary()`` gives totals, per-op counts, bytes, times and bandwidth (GiB/s).

>>> import math
>>> class Vec:
...     @staticmethod
...     def norm(values):
...         return math.sqrt(sum(v * v for v in values))
>>> MemoryAccessTracker.wrap_class_method(Vec, "norm", "Vec.norm")
>>> MemoryAccessTracker.register_formula_direct("Vec.norm", lambda a, k, out: 8 * len(a[0]))
>>> with MemoryAccessTracker.context("norms") as ctx:
...     _ = Vec.norm([3.0, 4.0]), Vec.norm([1.0])
>>> ctx.total_bytes, ctx.summary()["ops"]["Vec.norm"]["count"]
(24, 2)
>>> MemoryAccessTracker.forget("Vec.norm")
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from contextlib import contextmanager
from typing import ClassVar

import torch


class AccessContext:
    """The bytes and times recorded by one tracking context.

    Attributes:
        name: the context's name.
        total_bytes, total_time_ms: sums over every recorded call.
        op_stats: per op, ``{"count", "bytes", "time_ms"}``.
        execution_details: one ``{"index", "op_name", "bytes", "time_ms"}`` per call.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.total_bytes = 0
        self.total_time_ms = 0.0
        self.op_stats: dict[str, dict] = {}
        self.execution_details: list[dict] = []
        self._pending: list[tuple] = []  # (op, bytes, start event, end event) of CUDA calls

    def add_access(self, op_name: str, bytes_count: int, time_ms: float) -> None:
        self.total_bytes += bytes_count
        self.total_time_ms += time_ms
        stats = self.op_stats.setdefault(op_name, {"count": 0, "bytes": 0, "time_ms": 0.0})
        stats["count"] += 1
        stats["bytes"] += bytes_count
        stats["time_ms"] += time_ms
        index = len(self.execution_details)
        record = {"index": index, "op_name": op_name, "bytes": bytes_count, "time_ms": time_ms}
        self.execution_details.append(record)

    def add_pending(self, op_name: str, bytes_count: int, start, end) -> None:
        """Record a CUDA call whose time is read at :meth:`resolve`."""
        self._pending.append((op_name, bytes_count, start, end))

    def resolve(self) -> None:
        """Read the pending CUDA times (one synchronisation)."""
        if not self._pending:
            return
        torch.cuda.synchronize()
        for op_name, bytes_count, start, end in self._pending:
            self.add_access(op_name, bytes_count, start.elapsed_time(end))
        self._pending = []

    def summary(self) -> dict:
        ops = {
            name: {**stats, "bandwidth_gbps": _gib_per_s(stats["bytes"], stats["time_ms"])}
            for name, stats in self.op_stats.items()
        }
        return {
            "name": self.name,
            "total_bytes": self.total_bytes,
            "total_time_ms": round(self.total_time_ms, 3),
            "avg_bandwidth_gbps": _gib_per_s(self.total_bytes, self.total_time_ms),
            "ops": ops,
            "execution_details": self.execution_details,
        }

    def __enter__(self) -> AccessContext:
        return self

    def __exit__(self, *exc) -> None:
        pass


def _gib_per_s(bytes_count: int, time_ms: float) -> float:
    return round(bytes_count / 2**30 / (time_ms / 1000), 2) if time_ms > 0 else 0.0


def _on_cuda(values) -> bool:
    for value in values:
        if isinstance(value, torch.Tensor):
            return value.is_cuda
        if isinstance(value, list | tuple) and _on_cuda(value):
            return True
    return False


class MemoryAccessTracker:
    """Process-wide registry of formulas and patch places, and the current context."""

    _formulas: ClassVar[dict[str, Callable]] = {}
    _patch_info: ClassVar[dict[str, tuple]] = {}  # op -> (owner, attribute, original)
    _current_context: AccessContext | None = None
    _is_patched = False

    @classmethod
    def register_formula(cls, op_name: str):
        """Decorator: register the decorated function as ``op_name``'s formula."""

        def register(formula: Callable) -> Callable:
            cls._formulas[op_name] = formula
            return formula

        return register

    @classmethod
    def register_formula_direct(cls, op_name: str, formula: Callable) -> None:
        cls._formulas[op_name] = formula

    @classmethod
    def get_formula(cls, op_name: str) -> Callable | None:
        return cls._formulas.get(op_name)

    @classmethod
    def list_registered_ops(cls) -> list[str]:
        return list(cls._formulas)

    @classmethod
    def register_operator(cls, owner, func_name: str, op_name: str | None = None) -> None:
        """Patch ``owner.func_name`` as ``op_name`` (default ``func_name``) in contexts; an op
        already registered keeps its first place."""
        op_name = op_name or func_name
        if op_name not in cls._patch_info and hasattr(owner, func_name):
            cls._patch_info[op_name] = (owner, func_name, getattr(owner, func_name))

    wrap_module_function = register_operator

    @classmethod
    def wrap_class_method(cls, class_obj, method_name: str, op_name: str | None = None) -> None:
        """Patch a method; ``op_name`` defaults to ``"<Class>.<method>"``."""
        cls.register_operator(
            class_obj, method_name, op_name or f"{class_obj.__name__}.{method_name}"
        )

    @classmethod
    def wrap_class_methods(cls, class_obj, method_names, op_names=None) -> None:
        names = op_names or [f"{class_obj.__name__}.{m}" for m in method_names]
        for method, name in zip(method_names, names, strict=True):
            cls.wrap_class_method(class_obj, method, name)

    @classmethod
    def wrap_decorator(cls, op_name: str | None = None):
        """Decorator: track the decorated function (in contexts, when it has a formula)."""
        return lambda function: cls._create_wrapper(op_name or function.__name__, function)

    @classmethod
    def forget(cls, op_name: str) -> None:
        """Drop ``op_name``'s formula and patch place."""
        cls._formulas.pop(op_name, None)
        cls._patch_info.pop(op_name, None)

    @classmethod
    def _create_wrapper(cls, op_name: str, original: Callable) -> Callable:
        @functools.wraps(original)
        def tracked(*args, **kwargs):
            context, formula = cls._current_context, cls._formulas.get(op_name)
            if context is None or formula is None:
                return original(*args, **kwargs)
            if _on_cuda(args):
                start, end = (torch.cuda.Event(enable_timing=True) for _ in range(2))
                start.record()
                output = original(*args, **kwargs)
                end.record()
                context.add_pending(op_name, int(formula(args, kwargs, output)), start, end)
                return output
            began = time.perf_counter()
            output = original(*args, **kwargs)
            elapsed_ms = (time.perf_counter() - began) * 1000
            context.add_access(op_name, int(formula(args, kwargs, output)), elapsed_ms)
            return output

        return tracked

    @classmethod
    def patch_all(cls) -> None:
        if not cls._is_patched:
            for op_name, (owner, attribute, original) in cls._patch_info.items():
                setattr(owner, attribute, cls._create_wrapper(op_name, original))
            cls._is_patched = True

    @classmethod
    def unpatch_all(cls) -> None:
        if cls._is_patched:
            for owner, attribute, original in cls._patch_info.values():
                setattr(owner, attribute, original)
            cls._is_patched = False

    @classmethod
    def is_patched(cls) -> bool:
        return cls._is_patched

    @classmethod
    def start_context(cls, name: str = "default") -> AccessContext:
        cls.patch_all()
        cls._current_context = AccessContext(name)
        return cls._current_context

    @classmethod
    def end_context(cls) -> AccessContext | None:
        context, cls._current_context = cls._current_context, None
        cls.unpatch_all()
        if context is not None:
            context.resolve()
        return context

    @classmethod
    @contextmanager
    def context(cls, name: str = "default"):
        """Track inside the block; the yielded :class:`AccessContext` holds the results."""
        context = cls.start_context(name)
        try:
            yield context
        finally:
            cls.end_context()

    @classmethod
    def is_enabled(cls) -> bool:
        return cls._current_context is not None

    @classmethod
    def get_current_context(cls) -> AccessContext | None:
        return cls._current_context


memory_access_context = MemoryAccessTracker.context

"""Leaving out the FLOPS that ``torch.compile`` spends compiling, not training.

While it compiles, Inductor benchmarks candidate kernels and AOTAutograd runs the joint graph; the
profiler counts the FLOPS of those runs like any other. An event is left out only when one of its
CPU ancestors is a scope known to be compile-only; an event under another scope whose name looks
compiler-related is kept and reported as ambiguous, and one whose ancestry is unknown (no parent,
a cycle, no ``ProfilerStep`` above it) is kept and reported as such. The examples of each kept
kind are grouped by (event, scope, root, step, input shapes, reason), largest first, at most 10.

>>> class Event:
...     def __init__(self, name, flops=0, parent=None):
...         self.name, self.flops, self.cpu_parent, self.input_shapes = name, flops, parent, None
>>> step = Event("ProfilerStep#3")
>>> bench = Event("InductorBenchmarker.benchmark_gpu (dynamo_timed)", parent=step)
>>> run = Event("CompiledFunction", parent=step)
>>> events = [Event("aten::mm", 64, bench), Event("aten::mm", 32, run)]
>>> result = filter_compiler_only_flops(events, raw_total_flops=96)
>>> result.filtered_total_flops, dict(result.excluded_by_scope)
(32.0, {'InductorBenchmarker.benchmark_gpu (dynamo_timed)': 64.0})
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

COMPILE_ONLY_SCOPES = frozenset(
    {
        "InductorBenchmarker.benchmark_gpu (dynamo_timed)",
        "CachingAutotuner.benchmark_all_configs (dynamo_timed)",
        "pad_mm_benchmark (dynamo_timed)",
        "pad_mm_benchmark_get_do_bench (dynamo_timed)",
        "async_compile.precompile (dynamo_timed)",
        "StaticAutotunerFuture.warm_precompile (dynamo_timed)",
        "aot_trace_joint_graph (dynamo_timed)",  # AOTAutograd runs the graph to trace it
    }
)
# scopes of compiled code *running*: their FLOPS are training FLOPS
COMPILED_RUNTIME_SCOPES = frozenset(
    {
        "CompiledFunction",
        "CompiledFunctionBackward",
        "autograd::engine::evaluate_function: CompiledFunctionBackward",
        "TorchDynamo Cache Lookup",
        "AOTDispatcher Runtime Wrapper Prologue",
        "Pregraph bytecode",
    }
)
_COMPILED_RUNTIME_PREFIX = "Torch-Compiled Region:"
_LOOKS_COMPILER_RELATED = re.compile(
    r"compile|compiled|dynamo|inductor|aot|autotun|benchmark|do_bench", re.IGNORECASE
)
MAX_EXAMPLES = 10


@dataclass(frozen=True)
class CompilerFlopsExample:
    """FLOPS kept by the filter, grouped: how many calls, how many FLOPS, and why."""

    event_name: str
    ancestor_name: str | None
    root_name: str | None
    profiler_step: str | None
    input_shapes: str
    reason: str
    calls: int
    total_flops: float


@dataclass(frozen=True)
class CompilerFlopsFilterResult:
    """The FLOPS of one profiled window with the compile-only ones left out."""

    raw_total_flops: float
    filtered_total_flops: float
    excluded_compile_flops: float
    ambiguous_kept_flops: float
    parent_unknown_kept_flops: float
    excluded_by_scope: Mapping[str, float]
    ambiguous_examples: tuple[CompilerFlopsExample, ...]
    parent_unknown_examples: tuple[CompilerFlopsExample, ...]
    excluded_event_object_ids: frozenset[int] = field(repr=False)

    @classmethod
    def unfiltered(cls, total_flops: float) -> CompilerFlopsFilterResult:
        """The result of a window where nothing is left out."""
        total = float(total_flops)
        return cls(total, total, 0.0, 0.0, 0.0, MappingProxyType({}), (), (), frozenset())


@dataclass(frozen=True)
class _Ancestry:
    compile_only: str | None = None
    ambiguous: str | None = None
    root: str | None = None
    step: str | None = None
    issue: str | None = None


def _ancestry(event) -> _Ancestry:
    """The scopes above ``event`` that matter, walking its CPU parents to the root."""
    node = getattr(event, "cpu_parent", None)
    if node is None:
        return _Ancestry(issue="cpu_parent_unavailable")
    compile_only = ambiguous = root = step = issue = None
    seen: set[int] = set()
    while node is not None:
        if id(node) in seen:
            issue = "cpu_parent_cycle"
            break
        seen.add(id(node))
        name = str(getattr(node, "name", ""))
        root = name or root
        step = name if name.startswith("ProfilerStep") else step
        if name in COMPILE_ONLY_SCOPES:
            compile_only = compile_only or name
        elif ambiguous is None and _looks_compiler_only(name):
            ambiguous = name
        node = getattr(node, "cpu_parent", None)
    if issue is None and step is None:
        issue = "no_profiler_step_ancestor"
    return _Ancestry(compile_only, ambiguous, root, step, issue)


def _looks_compiler_only(name: str) -> bool:
    running = name in COMPILED_RUNTIME_SCOPES or name.startswith(_COMPILED_RUNTIME_PREFIX)
    return not running and _LOOKS_COMPILER_RELATED.search(name) is not None


def _flops(event) -> float:
    return float(getattr(event, "flops", None) or 0.0)


def _shapes(event, limit: int = 200) -> str:
    text = repr(getattr(event, "input_shapes", None)).replace("\n", "")
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Examples:
    """Kept FLOPS grouped by what explains them."""

    def __init__(self) -> None:
        self._groups: dict[tuple, list] = defaultdict(lambda: [0, 0.0])

    def add(self, event, ancestry: _Ancestry, scope: str | None, reason: str, flops: float):
        name = str(getattr(event, "name", "unknown"))
        key = (name, scope, ancestry.root, ancestry.step, _shapes(event), reason)
        group = self._groups[key]
        group[0], group[1] = group[0] + 1, group[1] + flops

    def largest(self) -> tuple[CompilerFlopsExample, ...]:
        ranked = sorted(self._groups.items(), key=lambda item: item[1][1], reverse=True)
        return tuple(CompilerFlopsExample(*key, *group) for key, group in ranked[:MAX_EXAMPLES])


def filter_compiler_only_flops(events: Iterable, raw_total_flops: float):
    """The window's FLOPS without those under compile-only scopes (see the module docstring).

    ``raw_total_flops`` (the sum of ``key_averages()``) must match the events' own sum, so that
    FLOPS are never taken from a different population.

    Raises:
        ValueError: the events do not add up to ``raw_total_flops``.
    """
    events = tuple(events)
    raw = float(raw_total_flops)
    tolerance = max(1.0, abs(raw) * 1e-9)
    event_total = sum(_flops(event) for event in events)
    if abs(event_total - raw) > tolerance:
        raise ValueError(
            "profiler events/key_averages FLOPS mismatch: "
            f"events_total={event_total}, raw_total={raw}"
        )
    by_scope: dict[str, float] = defaultdict(float)
    excluded_ids: set[int] = set()
    ambiguous, parent_unknown = _Examples(), _Examples()
    ambiguous_flops = parent_unknown_flops = 0.0
    for event in events:
        flops = _flops(event)
        if flops == 0:
            continue
        ancestry = _ancestry(event)
        if ancestry.compile_only is not None:
            by_scope[ancestry.compile_only] += flops
            excluded_ids.add(id(event))
        elif ancestry.ambiguous is not None:
            ambiguous_flops += flops
            reason = "unknown_compiler_related_scope"
            ambiguous.add(event, ancestry, ancestry.ambiguous, reason, flops)
        elif ancestry.issue is not None:
            parent_unknown_flops += flops
            parent_unknown.add(event, ancestry, None, ancestry.issue, flops)
    excluded = sum(by_scope.values())
    filtered = raw - excluded
    if filtered < -tolerance:
        raise ValueError(f"compile-only FLOPS {excluded} exceed the raw total {raw}")
    ranked_scopes = dict(sorted(by_scope.items(), key=lambda item: item[1], reverse=True))
    return CompilerFlopsFilterResult(
        raw_total_flops=raw,
        filtered_total_flops=max(filtered, 0.0),
        excluded_compile_flops=excluded,
        ambiguous_kept_flops=ambiguous_flops,
        parent_unknown_kept_flops=parent_unknown_flops,
        excluded_by_scope=MappingProxyType(ranked_scopes),
        ambiguous_examples=ambiguous.largest(),
        parent_unknown_examples=parent_unknown.largest(),
        excluded_event_object_ids=frozenset(excluded_ids),
    )

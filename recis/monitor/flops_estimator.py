"""The startup FLOPS estimate behind RecIS's FLOPS and MFU metrics.

A few steps after start-up are profiled once (``recis.hooks.initial_profiler_hook``). Their
FLOPS — only what ``torch.profiler`` counts (matmuls, convolutions…; fused, sparse and
embedding kernels count nothing) — are split by each operator's input dtype, and each dtype's
share is timed at the device's peak for that dtype: the sum is the ideal time of a step, and
``MFU = ideal time × steps / elapsed time``, a lower bound. Evaluation steps are counted as
``eval_flops_ratio`` (default 1/3) of a training step.

Input dtypes come from the profiler's in-memory event tree; when it joins too few FLOPS to the
events, from a temporary Chrome trace of the same window; FLOPS still unjoined may take the
trainer's mixed-precision dtype as a hint. Mixed or unsupported inputs stay UNKNOWN and never get
a peak: when less than ``min_peak_coverage`` of the FLOPS have a peak, MFU is not reported.

>>> estimate = build_startup_flops_estimate(
...     total_flops=400e12, sample_step_type=StepType.TRAIN, sample_steps=1,
...     eval_flops_ratio=1 / 3,
...     flops_by_input_dtype={InputDType.FP32: 100e12, InputDType.FP16: 300e12},
...     peak_lookup={InputDType.FP32: 100.0, InputDType.FP16: 200.0}.get)
>>> estimate.train_equiv_ideal_seconds_per_step, estimate.mixed_tflops_peak  # 1 s + 1.5 s
(2.5, 160.0)
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType

from recis.monitor.compiler_scopes import (
    CompilerFlopsExample,
    CompilerFlopsFilterResult,
    filter_compiler_only_flops,
)
from recis.monitor.gpuinfo_inquirer import GpuVendor, Inquirer, Precision
from recis.monitor.input_dtypes import InputDType, classify_input_dtype, event_key
from recis.monitor.input_dtypes import merge_event_dtype as _merge_event_dtype
from recis.utils.logger import Logger

__all__ = [
    "CompilerFlopsExample",
    "CompilerFlopsFilterResult",
    "InputDType",
    "ProfileFlopsResult",
    "StartupFlopsEstimate",
    "StartupFlopsState",
    "StepType",
    "build_startup_flops_estimate",
    "classify_input_dtype",
    "filter_compiler_only_flops",
    "get_input_dtype_peak_tflops",
    "profile_flops_by_input_dtype",
]

logger = Logger(__name__)


class StepType(str, Enum):
    TRAIN = "train"
    EVAL = "eval"

    @classmethod
    def from_is_train(cls, is_train: bool) -> StepType:
        return cls.TRAIN if is_train else cls.EVAL


@dataclass(frozen=True)
class ProfileFlopsResult:
    """A window's FLOPS by input dtype, with where the dtypes came from and how many FLOPS each
    source covered (exactly, before the hint; after it)."""

    flops_by_input_dtype: Mapping[InputDType, float]
    input_dtype_source: str
    tf32_unaccounted: bool = False
    primary_exact_input_dtype_coverage: float = 1.0
    exact_input_dtype_coverage: float = 1.0
    resolved_input_dtype_coverage: float = 1.0
    unmatched_flops: float = 0.0
    explicit_unknown_flops: float = 0.0
    imputed_flops: float = 0.0
    imputed_dtype: InputDType | None = None


@dataclass(frozen=True)
class StartupFlopsEstimate:
    """FLOPS of one training step (evaluation samples scaled up) and the ideal device time
    of those FLOPS; ``mfu_invalid_reason`` says why MFU cannot be reported (None: it can)."""

    sample_step_type: StepType
    sample_steps: int
    train_equiv_flops_per_step: float
    train_equiv_ideal_seconds_per_step: float | None
    mixed_tflops_peak: float | None
    train_equiv_flops_by_input_dtype: Mapping[InputDType, float]
    input_dtype_coverage: float
    peak_coverage: float
    mfu_invalid_reason: str | None
    tf32_unaccounted: bool = False
    source: str = "torch_profiler_startup_estimate"
    precision_basis: str = "operator_input_dtype"


@dataclass
class StartupFlopsState:
    """The estimate the startup profiler hands to the reporting hook (or why there is none)."""

    estimate: StartupFlopsEstimate | None = None
    invalid_reason: str | None = None

    def reset(self) -> None:
        self.estimate, self.invalid_reason = None, None

    def set_estimate(self, estimate: StartupFlopsEstimate) -> None:
        self.estimate, self.invalid_reason = estimate, None

    def invalidate(self, reason: str) -> None:
        self.estimate, self.invalid_reason = None, reason


def _tolerance(total: float) -> float:
    return max(1.0, abs(total) * 1e-9)


def _coverage(covered: float, total: float) -> float:
    return 0.0 if total <= 0 else min(max(covered / total, 0.0), 1.0)


# -- input dtypes of the profiled events ------------------------------------------------------


def _tree_nodes(nodes):
    for node in nodes:
        yield node
        yield from _tree_nodes(getattr(node, "children", ()))


def _event_tree_input_dtypes(profiler) -> dict[str, InputDType] | None:
    """Input dtypes by event id from the profiler's event tree; None where torch has none."""
    results = getattr(getattr(profiler, "profiler", None), "kineto_results", None)
    event_tree = getattr(results, "experimental_event_tree", None)
    if not callable(event_tree):
        return None
    try:
        dtypes: dict[str, InputDType] = {}
        for node in _tree_nodes(event_tree()):
            inputs = getattr(getattr(node, "extra_fields", None), "inputs", None)
            correlation_id = getattr(node, "correlation_id", None)
            if correlation_id is None or inputs is None:
                continue
            types = [getattr(value, "dtype", "Scalar") for value in inputs]
            _merge_event_dtype(dtypes, event_key(correlation_id), classify_input_dtype(types))
        return dtypes
    except Exception as error:  # the tree is an experimental torch API
        logger.warning("profiler event tree unreadable, using a Chrome trace (%s)", error)
        return None


def _trace_directory() -> str | None:
    """``$STD_LOG_DIR/$RANK`` when ``STD_LOG_DIR`` is set (created), else the temp directory."""
    base = os.environ.get("STD_LOG_DIR")
    if not base:
        return None
    directory = os.path.join(base, os.environ.get("RANK", "0"))
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as error:
        logger.warning("cannot create %s for a profiler trace, using /tmp (%s)", directory, error)
        return None
    return directory


def _chrome_trace_input_dtypes(profiler) -> dict[str, InputDType]:
    """Input dtypes by event id from a temporary Chrome trace of the profiled window (deleted,
    unless it was written but could not be read: then kept and named in the log)."""
    handle, path = tempfile.mkstemp("-input-dtypes.json", "recis-mfu-", _trace_directory())
    os.close(handle)
    try:
        profiler.export_chrome_trace(path)
    except Exception:
        _remove(path)
        raise
    try:
        with open(path, encoding="utf-8") as file:
            trace = json.load(file)
    except Exception:
        logger.warning("profiler trace %s unreadable; kept for inspection", path)
        raise
    _remove(path)
    dtypes: dict[str, InputDType] = {}
    for entry in trace.get("traceEvents", []):
        args = entry.get("args") or {}
        if args.get("External id") is not None and "Input type" in args:
            key = event_key(args["External id"])
            _merge_event_dtype(dtypes, key, classify_input_dtype(args["Input type"]))
    return dtypes


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError as error:
        logger.debug("could not remove profiler trace %s: %s", path, error)


# -- TF32: FP32 inputs that may have run at TF32 speed ----------------------------------------


def _new_tf32_setting(*owners) -> bool | None:
    """Whether the most specific ``fp32_precision`` setting (torch ≥ 2.9) is ``"tf32"``;
    ``"none"`` means "inherited", None that no owner sets it."""
    for owner in owners:
        if owner is None:
            continue
        try:
            setting = str(owner.fp32_precision).lower()
        except (AttributeError, RuntimeError):
            continue
        if setting != "none":
            return setting == "tf32"
    return None


def _torch():
    return sys.modules.get("torch")


def _matmul_tf32_enabled() -> bool:
    torch = _torch()
    if torch is None:
        return False
    backends = torch.backends
    setting = _new_tf32_setting(backends.cuda.matmul, backends.cuda, backends)
    return setting if setting is not None else bool(backends.cuda.matmul.allow_tf32)


def _conv_tf32_enabled() -> bool:
    torch = _torch()
    if torch is None:
        return False
    cudnn = torch.backends.cudnn
    setting = _new_tf32_setting(getattr(cudnn, "conv", None), cudnn, torch.backends)
    return setting if setting is not None else bool(getattr(cudnn, "allow_tf32", False))


def _nvidia_tf32_supported() -> bool:
    torch = _torch()
    if Inquirer.vendor != GpuVendor.NVIDIA or torch is None:
        return False
    try:
        return torch.cuda.get_device_capability(0)[0] >= 8
    except (RuntimeError, AssertionError):
        return False


_TF32_MATMULS = frozenset({"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm"})


def _may_run_as_tf32(event_name: str, dtype: InputDType) -> bool:
    if dtype != InputDType.FP32 or not _nvidia_tf32_supported():
        return False
    if event_name in _TF32_MATMULS:
        return _matmul_tf32_enabled()
    return event_name == "aten::conv2d" and _conv_tf32_enabled()


# -- FLOPS by input dtype ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Join:
    flops_by_input_dtype: Mapping[InputDType, float]
    unmatched_flops: float
    explicit_unknown_flops: float
    tf32_unaccounted: bool

    @property
    def total_flops(self) -> float:
        return sum(self.flops_by_input_dtype.values())

    @property
    def exact_coverage(self) -> float:
        unknown = self.flops_by_input_dtype.get(InputDType.UNKNOWN, 0.0)
        return _coverage(self.total_flops - unknown, self.total_flops)


def _join(events: Sequence, dtypes: Mapping[str, InputDType], excluded: frozenset) -> _Join:
    """Each counted event's FLOPS under the dtype its id has in ``dtypes`` (UNKNOWN if none)."""
    by_dtype: dict[InputDType, float] = {}
    unmatched = explicit_unknown = 0.0
    tf32 = False
    for event in events:
        flops = getattr(event, "flops", None)
        if id(event) in excluded or not flops:
            continue
        dtype = dtypes.get(event_key(getattr(event, "id", "")))
        if dtype is None:
            dtype, unmatched = InputDType.UNKNOWN, unmatched + float(flops)
        elif dtype == InputDType.UNKNOWN:
            explicit_unknown += float(flops)
        by_dtype[dtype] = by_dtype.get(dtype, 0.0) + float(flops)
        tf32 = tf32 or _may_run_as_tf32(getattr(event, "name", ""), dtype)
    return _Join(MappingProxyType(by_dtype), unmatched, explicit_unknown, tf32)


def _with_chrome_trace_if_better(profiler, events, excluded, join: _Join) -> _Join | None:
    """The join over a Chrome trace of the window, when it covers more FLOPS than ``join``."""
    try:
        recovered = _join(events, _chrome_trace_input_dtypes(profiler), excluded)
    except Exception as error:
        logger.warning(
            "input dtypes of %.0f FLOPS unknown (exact coverage %.5f); no Chrome trace: %s",
            join.unmatched_flops,
            join.exact_coverage,
            error,
        )
        return None
    if recovered.exact_coverage > join.exact_coverage:
        logger.info(
            "input dtypes from a Chrome trace: coverage %.5f -> %.5f",
            join.exact_coverage,
            recovered.exact_coverage,
        )
        return recovered
    logger.warning("a Chrome trace does not cover more FLOPS; keeping the event tree's dtypes")
    return None


def _impute(join: _Join, hint: InputDType | None) -> tuple[Mapping[InputDType, float], float]:
    """The unjoined FLOPS moved from UNKNOWN to ``hint``; returns the dtypes and that amount."""
    if hint is None or join.unmatched_flops <= 0:
        return join.flops_by_input_dtype, 0.0
    if hint == InputDType.UNKNOWN:
        raise ValueError("fallback_input_dtype cannot be UNKNOWN")
    by_dtype = dict(join.flops_by_input_dtype)
    left = by_dtype.pop(InputDType.UNKNOWN, 0.0) - join.unmatched_flops
    tolerance = _tolerance(join.total_flops)
    if left < -tolerance:
        raise ValueError(f"unmatched FLOPS {join.unmatched_flops} exceed the UNKNOWN ones")
    if left > tolerance:
        by_dtype[InputDType.UNKNOWN] = left
    by_dtype[hint] = by_dtype.get(hint, 0.0) + join.unmatched_flops
    return MappingProxyType(by_dtype), join.unmatched_flops


def profile_flops_by_input_dtype(
    profiler,
    *,
    events: Sequence | None = None,
    excluded_event_object_ids: frozenset[int] | None = None,
    min_exact_coverage: float = 0.99,
    fallback_input_dtype: InputDType | None = None,
) -> ProfileFlopsResult:
    """The FLOPS of ``profiler``'s window (or of ``events``) by input dtype (module docstring).

    Args:
        profiler: a finished ``torch.profiler.profile``.
        events: its events (read from ``profiler`` when None).
        excluded_event_object_ids: ``id()`` of events to leave out (compile-only ones).
        min_exact_coverage: below this share of FLOPS with a known dtype, try a Chrome trace.
        fallback_input_dtype: dtype for FLOPS that no source joins to an event.
    """
    if not 0 < min_exact_coverage <= 1:
        raise ValueError("min_exact_coverage must be in (0, 1]")
    events = tuple(profiler.events() if events is None else events)
    excluded = excluded_event_object_ids or frozenset()
    dtypes = _event_tree_input_dtypes(profiler)
    source = "experimental_event_tree"
    if dtypes is None:
        dtypes, source = _chrome_trace_input_dtypes(profiler), "chrome_trace_fallback"
    join = _join(events, dtypes, excluded)
    primary_coverage = join.exact_coverage
    if (
        source == "experimental_event_tree"
        and primary_coverage < min_exact_coverage
        and join.unmatched_flops > _tolerance(join.total_flops)
    ):
        recovered = _with_chrome_trace_if_better(profiler, events, excluded, join)
        if recovered is not None:
            join, source = recovered, "chrome_trace_coverage_fallback"
    by_dtype, imputed = _impute(join, fallback_input_dtype)
    if imputed > 0:
        source = f"{source}+missing_join_imputed_{fallback_input_dtype.value}"
        logger.warning(
            "input dtypes of %.0f FLOPS unknown: counted as the trainer's %s",
            imputed,
            fallback_input_dtype.value,
        )
    known = sum(f for dtype, f in by_dtype.items() if dtype != InputDType.UNKNOWN)
    return ProfileFlopsResult(
        flops_by_input_dtype=by_dtype,
        input_dtype_source=source,
        tf32_unaccounted=join.tf32_unaccounted,
        primary_exact_input_dtype_coverage=primary_coverage,
        exact_input_dtype_coverage=join.exact_coverage,
        resolved_input_dtype_coverage=_coverage(known, join.total_flops),
        unmatched_flops=join.unmatched_flops,
        explicit_unknown_flops=join.explicit_unknown_flops,
        imputed_flops=imputed,
        imputed_dtype=fallback_input_dtype if imputed > 0 else None,
    )


# -- the estimate -----------------------------------------------------------------------------

_PRECISION_OF = {
    InputDType.FP64: Precision.fp64,
    InputDType.FP32: Precision.fp32,
    InputDType.FP16: Precision.fp16,
    InputDType.BF16: Precision.bf16,
    InputDType.INT8: Precision.int8,
}


def get_input_dtype_peak_tflops(input_dtype: InputDType, device_index: int = 0) -> float | None:
    """The device's datasheet peak for operators of ``input_dtype`` (None when unknown)."""
    precision = _PRECISION_OF.get(input_dtype)
    if precision is None:
        return None
    return Inquirer.get_peak_tflops(device_index=device_index, precision=precision)


def _scalar_estimate(total, step_type, steps, peak, basis, tf32) -> StartupFlopsEstimate:
    valid_peak = peak is not None and peak > 0
    reason = "no_countable_flops" if total <= 0 else None if valid_peak else "unknown_peak"
    return StartupFlopsEstimate(
        sample_step_type=step_type,
        sample_steps=steps,
        train_equiv_flops_per_step=total,
        train_equiv_ideal_seconds_per_step=total / (peak * 1e12) if reason is None else None,
        mixed_tflops_peak=peak if valid_peak and total > 0 else None,
        train_equiv_flops_by_input_dtype=MappingProxyType({}),
        input_dtype_coverage=1.0 if total > 0 else 0.0,
        peak_coverage=1.0 if valid_peak and total > 0 else 0.0,
        mfu_invalid_reason=reason,
        tf32_unaccounted=tf32,
        precision_basis=basis,
    )


def build_startup_flops_estimate(
    *,
    total_flops: float,
    sample_step_type: StepType,
    sample_steps: int,
    eval_flops_ratio: float,
    flops_by_input_dtype: Mapping[InputDType, float] | None = None,
    scalar_tflops_peak: float | None = None,
    scalar_precision_basis: str = "explicit_tflops_peak",
    peak_lookup: Callable[[InputDType], float | None] = get_input_dtype_peak_tflops,
    min_peak_coverage: float = 0.99,
    tf32_unaccounted: bool = False,
) -> StartupFlopsEstimate:
    """The estimate of ``sample_steps`` profiled steps that did ``total_flops``.

    With ``flops_by_input_dtype`` each dtype's FLOPS are timed at ``peak_lookup(dtype)``;
    without, all of them at ``scalar_tflops_peak``. FLOPS without a peak count no time; MFU
    needs at least ``min_peak_coverage`` of the FLOPS to have one (it is then a lower bound).
    """
    if sample_steps <= 0:
        raise ValueError("sample_steps must be positive")
    if eval_flops_ratio <= 0:
        raise ValueError("eval_flops_ratio must be positive")
    if not 0 < min_peak_coverage <= 1:
        raise ValueError("min_peak_coverage must be in (0, 1]")
    ratio = 1.0 if sample_step_type == StepType.TRAIN else eval_flops_ratio
    total = float(total_flops) / sample_steps / ratio
    if flops_by_input_dtype is None:
        return _scalar_estimate(
            total,
            sample_step_type,
            sample_steps,
            scalar_tflops_peak,
            scalar_precision_basis,
            tf32_unaccounted,
        )
    by_dtype = {d: float(f) / sample_steps / ratio for d, f in flops_by_input_dtype.items()}
    dtype_total = sum(by_dtype.values())
    mismatch = abs(dtype_total - total) > _tolerance(total)
    if mismatch:
        logger.warning(
            "profiler FLOPS by dtype do not add up: dtype_total=%s, train_equiv_total=%s, "
            "relative deviation %.6g",
            dtype_total,
            total,
            abs(dtype_total - total) / max(abs(total), 1.0),
        )
        by_dtype = {InputDType.UNKNOWN: total}
    classified = sum(f for d, f in by_dtype.items() if d != InputDType.UNKNOWN)
    input_coverage = _coverage(classified, total)
    ideal, covered = 0.0, 0.0
    for dtype, flops in by_dtype.items():
        peak = peak_lookup(dtype) if flops else None
        if peak is not None and peak > 0:
            covered += flops
            ideal += flops / (peak * 1e12)
    peak_coverage = _coverage(covered, total)
    reason = None
    if total <= 0:
        reason = "no_countable_flops"
    elif mismatch:
        reason = "trace_join_mismatch"
    elif peak_coverage < min_peak_coverage:
        low_input = input_coverage < min_peak_coverage
        reason = "unknown_input_dtype" if low_input else "missing_dtype_peak"
    elif ideal <= 0:
        reason = "invalid_dtype_peak"
    return StartupFlopsEstimate(
        sample_step_type=sample_step_type,
        sample_steps=sample_steps,
        train_equiv_flops_per_step=total,
        train_equiv_ideal_seconds_per_step=ideal if reason is None else None,
        # the harmonic mean of the peaks, weighted by the FLOPS that have one
        mixed_tflops_peak=covered / ideal / 1e12 if reason is None else None,
        train_equiv_flops_by_input_dtype=MappingProxyType(dict(by_dtype)),
        input_dtype_coverage=input_coverage,
        peak_coverage=peak_coverage,
        mfu_invalid_reason=reason,
        tf32_unaccounted=tf32_unaccounted,
    )

"""``_InitialProfilerHook``: profiles startup steps 7–9 once for the FLOPS/MFU estimate.

RecIS's trainer adds this hook itself (unless ``RECIS_MONITOR_ON`` is set to anything but
``"1"``). Steps 1–5 are skipped (compilation, warm caches), step 6 warms the profiler up, and
steps 7–9 are recorded; their FLOPS, left without compile-only work and split by input dtype, are
averaged into a :class:`~recis.monitor.flops_estimator.StartupFlopsEstimate` published on the
shared :class:`~recis.monitor.flops_estimator.StartupFlopsState`. The profiler is closed after
step 9, before :class:`~recis.hooks.profiler_hook.ProfilerHook` creates its own at step 10.
The sampled steps must be all training or all evaluation steps; a phase that ends before step 9
closes the profiler without an estimate (``invalid_reason`` says why).

>>> import os
>>> os.environ["RECIS_MONITOR_ON"] = "0"
>>> hook = _InitialProfilerHook()
>>> hook.prof is None
True
>>> del os.environ["RECIS_MONITOR_ON"]
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch
from torch.profiler import ProfilerActivity, profile, schedule

from recis.backends.torch.recis_path import serve_at_recis_path
from recis.hooks.hook import Hook
from recis.monitor.flops_estimator import (
    CompilerFlopsFilterResult,
    InputDType,
    ProfileFlopsResult,
    StartupFlopsState,
    StepType,
    build_startup_flops_estimate,
    filter_compiler_only_flops,
    get_input_dtype_peak_tflops,
    profile_flops_by_input_dtype,
)
from recis.utils.logger import Logger

INITIAL_PROFILE_SKIP_STEPS = 5
INITIAL_PROFILE_WARMUP_STEPS = 1
INITIAL_PROFILE_ACTIVE_STEPS = 3
INITIAL_PROFILE_FIRST_ACTIVE_STEP = INITIAL_PROFILE_SKIP_STEPS + INITIAL_PROFILE_WARMUP_STEPS + 1
INITIAL_PROFILE_LAST_STEP = INITIAL_PROFILE_FIRST_ACTIVE_STEP + INITIAL_PROFILE_ACTIVE_STEPS - 1
USER_PROFILER_CREATE_STEP = INITIAL_PROFILE_LAST_STEP + 1

_PRECISION_HINTS = {"bf16": InputDType.BF16, "fp16": InputDType.FP16}


def is_train_step(is_train) -> bool:
    """RecIS passes ``is_train``; this package's trainer passes the step's metrics there."""
    return is_train if isinstance(is_train, bool) else True


class _InitialProfilerHook(Hook):
    """The startup FLOPS profiler (see the module docstring).

    Args:
        flops_state: where the estimate is published (shared with the metric hook).
        eval_flops_ratio: FLOPS of an evaluation step relative to a training step.
        collect_input_dtypes: split the FLOPS by input dtype (records shapes).
        mixed_precision: the trainer's ``"bf16"``/``"fp16"``, for FLOPS no dtype is joined to.
        scalar_tflops_peak: one peak for all FLOPS instead of per-dtype peaks.
        scalar_precision_basis: how that peak was chosen (logged).
        min_peak_coverage: share of FLOPS that need a peak for MFU to be reported.
        peak_lookup: the peak TFLOPS of an input dtype.
    """

    def __init__(
        self,
        flops_state: StartupFlopsState | None = None,
        eval_flops_ratio: float = 1.0 / 3.0,
        collect_input_dtypes: bool = True,
        mixed_precision: str | None = None,
        scalar_tflops_peak: float | None = None,
        scalar_precision_basis: str = "explicit_tflops_peak",
        min_peak_coverage: float = 0.99,
        peak_lookup: Callable[[InputDType], float | None] = get_input_dtype_peak_tflops,
    ) -> None:
        self.logger = Logger("_InitialProfilerHook")
        hint = mixed_precision.lower() if mixed_precision is not None else None
        if hint is not None and hint not in _PRECISION_HINTS:
            raise ValueError("mixed_precision must be 'bf16', 'fp16', or None")
        if eval_flops_ratio <= 0:
            raise ValueError("eval_flops_ratio must be positive")
        if not 0 < min_peak_coverage <= 1:
            raise ValueError("min_peak_coverage must be in (0, 1]")
        self.fallback_input_dtype = _PRECISION_HINTS.get(hint)
        self.flops_state = flops_state or StartupFlopsState()
        self.flops_state.reset()
        self.eval_flops_ratio = eval_flops_ratio
        self.collect_input_dtypes = collect_input_dtypes
        self.scalar_tflops_peak = scalar_tflops_peak
        self.scalar_precision_basis = scalar_precision_basis
        self.min_peak_coverage = min_peak_coverage
        self.peak_lookup = peak_lookup
        self.prof_step_count = 0
        self.sample_step_type: StepType | None = None
        self.prof = None
        if os.environ.get("RECIS_MONITOR_ON", "1") == "1":
            self.prof = self._open_profiler()

    def _open_profiler(self):
        activities = [ProfilerActivity.CPU]
        if torch.cuda.is_available():
            activities.append(ProfilerActivity.CUDA)
        steps = schedule(
            wait=0,
            warmup=INITIAL_PROFILE_WARMUP_STEPS,
            active=INITIAL_PROFILE_ACTIVE_STEPS,
            repeat=1,
            skip_first=INITIAL_PROFILE_SKIP_STEPS,
        )
        prof = profile(
            activities=activities,
            schedule=steps,
            record_shapes=self.collect_input_dtypes,
            profile_memory=False,
            with_stack=False,
            with_flops=True,
            with_modules=False,
        )
        prof.__enter__()
        return prof

    def before_step(self, *args, **kwargs) -> None:
        """Nothing: the profiler advances after each step."""

    def after_step(self, is_train=True, *args, **kwargs) -> None:
        if self.prof is None:
            return
        step = self.prof_step_count + 1
        self.prof_step_count = step
        if step >= INITIAL_PROFILE_FIRST_ACTIVE_STEP and not self._same_step_type(is_train):
            return
        self.prof.step()
        if step == INITIAL_PROFILE_LAST_STEP:
            try:
                self._publish_estimate()
            except Exception as error:
                self.flops_state.invalidate("profiler_estimate_error")
                self.logger.error("no startup FLOPS estimate: profiler_estimate_error (%s)", error)
            finally:
                self._close_profiler()

    def _same_step_type(self, is_train) -> bool:
        """Whether the sampled steps so far are all of this step's type (else: give up)."""
        step_type = StepType.from_is_train(is_train_step(is_train))
        if self.sample_step_type is None:
            self.sample_step_type = step_type
        if self.sample_step_type == step_type:
            return True
        self.flops_state.invalidate("mixed_startup_step_types")
        self._close_profiler()
        self.logger.warning(
            "no startup FLOPS estimate: mixed_startup_step_types (%s steps, then %s at step %s)",
            self.sample_step_type.value,
            step_type.value,
            self.prof_step_count,
        )
        return False

    def _publish_estimate(self) -> None:
        averages = self.prof.key_averages()
        raw_total = sum(float(e.flops) for e in averages if getattr(e, "flops", None) is not None)
        events, compile_filter = None, CompilerFlopsFilterResult.unfiltered(raw_total)
        try:
            events = tuple(self.prof.events())
            compile_filter = filter_compiler_only_flops(events, raw_total)
        except Exception as error:
            self.logger.warning(
                "compile-only FLOPS not filtered, keeping all (compile_filter_failed=%s)", error
            )
        self._log_compile_filter(compile_filter)
        total = compile_filter.filtered_total_flops
        profile_result = self._dtype_split(events, compile_filter, total)
        estimate = build_startup_flops_estimate(
            total_flops=total,
            sample_step_type=self.sample_step_type,
            sample_steps=INITIAL_PROFILE_ACTIVE_STEPS,
            eval_flops_ratio=self.eval_flops_ratio,
            flops_by_input_dtype=(
                profile_result.flops_by_input_dtype if self.collect_input_dtypes else None
            ),
            scalar_tflops_peak=self.scalar_tflops_peak,
            scalar_precision_basis=self.scalar_precision_basis,
            peak_lookup=self.peak_lookup,
            min_peak_coverage=self.min_peak_coverage,
            tf32_unaccounted=profile_result.tf32_unaccounted,
        )
        self.flops_state.set_estimate(estimate)
        self._log_estimate(estimate, profile_result)
        if self.collect_input_dtypes:
            self._log_dtype_distribution(estimate, profile_result)
        if estimate.tf32_unaccounted:
            self.logger.warning(
                "recis_tf32_unaccounted=true: FP32 matmuls or convolutions may run as TF32, but "
                "MFU divides by the FP32 peak, so it may be overestimated"
            )

    def _dtype_split(self, events, compile_filter, total: float) -> ProfileFlopsResult:
        coverage = 1.0 if total > 0 else 0.0
        if not self.collect_input_dtypes:
            return ProfileFlopsResult({}, "not_collected", False, coverage, coverage, coverage)
        try:
            return profile_flops_by_input_dtype(
                self.prof,
                events=events,
                excluded_event_object_ids=compile_filter.excluded_event_object_ids,
                min_exact_coverage=self.min_peak_coverage,
                fallback_input_dtype=self.fallback_input_dtype,
            )
        except Exception as error:
            self.logger.warning("FLOPS not split by input dtype, MFU disabled (%s)", error)
            unknown = {InputDType.UNKNOWN: total}
            return ProfileFlopsResult(
                unknown, "classification_failed", False, 0.0, 0.0, 0.0, unmatched_flops=total
            )

    def _log_estimate(self, estimate, result: ProfileFlopsResult) -> None:
        self.logger.info(
            "startup FLOPS estimate: %s FLOPS per training step (%s steps %s-%s, precision "
            "basis %s, dtypes from %s, dtype coverage %.5f, peak coverage %.5f, mixed peak %s "
            "TFLOPS, MFU invalid: %s)",
            estimate.train_equiv_flops_per_step,
            estimate.sample_step_type.value,
            INITIAL_PROFILE_FIRST_ACTIVE_STEP,
            INITIAL_PROFILE_LAST_STEP,
            estimate.precision_basis,
            result.input_dtype_source,
            estimate.input_dtype_coverage,
            estimate.peak_coverage,
            estimate.mixed_tflops_peak,
            estimate.mfu_invalid_reason,
        )

    def _log_dtype_distribution(self, estimate, result: ProfileFlopsResult) -> None:
        per_dtype = {
            d.value: float(estimate.train_equiv_flops_by_input_dtype.get(d, 0.0))
            for d in InputDType
        }
        total = sum(per_dtype.values())
        shares = {
            d: f"{f / total:.8%}" if total > 0 else "0.00000000%" for d, f in per_dtype.items()
        }
        ratio = 1.0 if estimate.sample_step_type == StepType.TRAIN else self.eval_flops_ratio
        imputed_per_step = result.imputed_flops / INITIAL_PROFILE_ACTIVE_STEPS / ratio
        hint = self.fallback_input_dtype.value if self.fallback_input_dtype else None
        self.logger.info(
            "MFU dtype distribution: FLOPS per training step %s, shares %s, dtypes from %s, "
            "precision hint %s, FLOPS per step given the hint %s",
            per_dtype,
            shares,
            result.input_dtype_source,
            hint,
            imputed_per_step,
        )

    def _log_compile_filter(self, result: CompilerFlopsFilterResult) -> None:
        if result.excluded_compile_flops > 0:
            self.logger.info(
                "Compiler-only FLOPS filtered: %.0f of %.0f left out, %.0f kept; by scope %s",
                result.excluded_compile_flops,
                result.raw_total_flops,
                result.filtered_total_flops,
                list(result.excluded_by_scope.items()),
            )
        if result.ambiguous_kept_flops > 0:
            self.logger.warning(
                "%.0f FLOPS under compiler-like scopes kept (reason "
                "unknown_compiler_related_scope); examples: %s",
                result.ambiguous_kept_flops,
                list(result.ambiguous_examples),
            )
        if result.parent_unknown_kept_flops > 0:
            self.logger.info(
                "%.0f FLOPS with unknown parent scopes kept; examples: %s",
                result.parent_unknown_kept_flops,
                list(result.parent_unknown_examples),
            )

    def _close_profiler(self) -> None:
        if self.prof is not None:
            self.prof.__exit__(None, None, None)
            self.prof = None

    def _close_incomplete_profiler(self, *args, **kwargs) -> None:
        if self.prof is None:
            return
        self._close_profiler()
        self.flops_state.invalidate("insufficient_profile_steps")
        self.logger.warning(
            "no startup FLOPS estimate: insufficient_profile_steps (%s of %s steps)",
            self.prof_step_count,
            INITIAL_PROFILE_LAST_STEP,
        )

    after_train = after_eval = out_off_data = end = _close_incomplete_profiler


serve_at_recis_path(__name__, "recis.hooks.initial_profiler_hook")

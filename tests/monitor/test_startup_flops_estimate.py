"""recis.monitor.flops_estimator on real torch profiles: FLOPS by input dtype, compile-only
scopes left out, and the estimate's peak, ideal time and reasons."""

from __future__ import annotations

import pytest
import torch
from torch.profiler import ProfilerActivity, profile, record_function

from recis.monitor.flops_estimator import (
    InputDType,
    StepType,
    build_startup_flops_estimate,
    filter_compiler_only_flops,
    profile_flops_by_input_dtype,
)


def profiled(*work):
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True, with_flops=True) as prof:
        for run in work:
            run()
    return prof


def matmul(n, dtype=torch.float32, scope=None):
    a = torch.ones((n, n), dtype=dtype)

    def run():
        if scope is None:
            torch.mm(a, a)
        else:
            with record_function(scope):
                torch.mm(a, a)

    return run


def test_flops_are_split_by_the_matmuls_input_dtype():
    prof = profiled(matmul(8), matmul(4, torch.bfloat16), matmul(2, torch.float64))
    result = profile_flops_by_input_dtype(prof)
    assert dict(result.flops_by_input_dtype) == {
        InputDType.FP32: 2 * 8**3,
        InputDType.BF16: 2 * 4**3,
        InputDType.FP64: 2 * 2**3,
    }
    assert result.input_dtype_source == "experimental_event_tree"
    assert result.exact_input_dtype_coverage == 1.0
    assert result.unmatched_flops == 0 and result.imputed_dtype is None


def test_compile_only_scopes_are_left_out_before_the_dtype_split():
    benchmark = "CachingAutotuner.benchmark_all_configs (dynamo_timed)"
    prof = profiled(matmul(8, scope=benchmark), matmul(4, scope="CompiledFunction"))
    raw = sum(e.flops or 0 for e in prof.key_averages())
    kept = filter_compiler_only_flops(prof.events(), raw)
    assert (raw, kept.filtered_total_flops) == (2 * 8**3 + 2 * 4**3, 2 * 4**3)
    assert dict(kept.excluded_by_scope) == {benchmark: 2 * 8**3}
    excluded = kept.excluded_event_object_ids
    split = profile_flops_by_input_dtype(prof, excluded_event_object_ids=excluded)
    assert dict(split.flops_by_input_dtype) == {InputDType.FP32: 2 * 4**3}


def test_events_that_do_not_add_up_to_the_raw_total_are_refused():
    prof = profiled(matmul(4))
    with pytest.raises(ValueError, match=r"events_total=128\.0, raw_total=100\.0"):
        filter_compiler_only_flops(prof.events(), 100)


def estimate(flops_by_dtype, peaks, total=None, step_type=StepType.TRAIN, steps=1):
    return build_startup_flops_estimate(
        total_flops=sum(flops_by_dtype.values()) if total is None else total,
        sample_step_type=step_type,
        sample_steps=steps,
        eval_flops_ratio=0.25,
        flops_by_input_dtype=flops_by_dtype,
        peak_lookup=peaks.get,
    )


def test_ideal_time_sums_each_dtype_at_its_peak():
    result = estimate(
        {InputDType.BF16: 600e12, InputDType.FP32: 60e12},
        {InputDType.BF16: 300.0, InputDType.FP32: 60.0},
        steps=2,
    )
    # per step: 300e12 bf16 FLOPS at 300 TFLOPS (1 s) + 30e12 fp32 at 60 (0.5 s)
    assert result.train_equiv_flops_per_step == 330e12
    assert result.train_equiv_ideal_seconds_per_step == pytest.approx(1.5)
    assert result.mixed_tflops_peak == pytest.approx(220.0)
    assert result.mfu_invalid_reason is None


def test_evaluation_samples_count_as_a_fraction_of_a_training_step():
    result = estimate({InputDType.FP32: 50e12}, {InputDType.FP32: 100.0}, step_type=StepType.EVAL)
    assert result.train_equiv_flops_per_step == pytest.approx(200e12)  # 50e12 / 0.25
    assert result.train_equiv_ideal_seconds_per_step == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("flops", "peaks", "total", "reason"),
    [
        ({InputDType.FP32: 90e12, InputDType.UNKNOWN: 10e12}, {InputDType.FP32: 1.0}, None,
         "unknown_input_dtype"),
        ({InputDType.FP8_E4M3: 100e12}, {}, None, "missing_dtype_peak"),
        ({InputDType.FP32: 100e12}, {InputDType.FP32: 1.0}, 50e12, "trace_join_mismatch"),
        ({}, {}, 0, "no_countable_flops"),
        ({InputDType.FP32: 100e12}, {InputDType.FP32: -1.0}, None, "missing_dtype_peak"),
    ],
)  # fmt: skip
def test_why_mfu_is_not_reported(flops, peaks, total, reason):
    result = estimate(flops, peaks, total=total)
    assert result.mfu_invalid_reason == reason
    assert result.train_equiv_ideal_seconds_per_step is None and result.mixed_tflops_peak is None

"""_InitialProfilerHook: steps 7-9 profiled once, averaged into the shared startup estimate."""

from __future__ import annotations

import pytest
import torch

from recis.hooks import _InitialProfilerHook
from recis.monitor.flops_estimator import InputDType, StartupFlopsState, StepType


@pytest.fixture(autouse=True)
def monitor_on(monkeypatch):
    monkeypatch.setenv("RECIS_MONITOR_ON", "1")


def run_steps(hook, sizes, is_train=True):
    for size in sizes:
        torch.mm(torch.ones(size, size), torch.ones(size, size))
        hook.after_step(is_train)


def test_steps_seven_to_nine_give_the_estimate():
    state = StartupFlopsState()
    hook = _InitialProfilerHook(flops_state=state, peak_lookup={InputDType.FP32: 2.0}.get)
    run_steps(hook, [20] * 6 + [3, 6, 9] + [30])
    assert hook.prof is None
    estimate = state.estimate
    assert estimate.sample_step_type == StepType.TRAIN
    assert estimate.train_equiv_flops_per_step == (2 * 3**3 + 2 * 6**3 + 2 * 9**3) / 3
    assert dict(estimate.train_equiv_flops_by_input_dtype) == {InputDType.FP32: 648.0}
    assert estimate.train_equiv_ideal_seconds_per_step == pytest.approx(648.0 / 2e12)


def test_the_trainers_metrics_argument_counts_as_a_training_step():
    state = StartupFlopsState()
    hook = _InitialProfilerHook(flops_state=state, collect_input_dtypes=False)
    for step in range(1, 10):
        torch.mm(torch.ones(4, 4), torch.ones(4, 4))
        hook.after_step({"loss": 0.5}, step)  # as this package's trainer calls it
    assert state.estimate.sample_step_type == StepType.TRAIN
    assert state.estimate.train_equiv_flops_per_step == 2 * 4**3
    assert state.estimate.mfu_invalid_reason in ("unknown_peak",)  # no GPU, no peak given


def test_evaluation_samples_are_scaled_to_training_steps():
    state = StartupFlopsState()
    hook = _InitialProfilerHook(
        flops_state=state, collect_input_dtypes=False, eval_flops_ratio=0.5, scalar_tflops_peak=1
    )
    run_steps(hook, [4] * 9, is_train=False)
    assert state.estimate.sample_step_type == StepType.EVAL
    assert state.estimate.train_equiv_flops_per_step == 2 * 4**3 / 0.5


def test_a_short_or_mixed_start_publishes_no_estimate():
    short = StartupFlopsState()
    hook = _InitialProfilerHook(flops_state=short)
    run_steps(hook, [4] * 4)
    hook.after_train()
    assert hook.prof is None and short.invalid_reason == "insufficient_profile_steps"
    mixed = StartupFlopsState()
    hook = _InitialProfilerHook(flops_state=mixed)
    run_steps(hook, [4] * 7)
    run_steps(hook, [4], is_train=False)
    assert hook.prof is None and mixed.invalid_reason == "mixed_startup_step_types"


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="mixed_precision must be 'bf16', 'fp16', or None"):
        _InitialProfilerHook(mixed_precision="fp8")
    with pytest.raises(ValueError, match="eval_flops_ratio must be positive"):
        _InitialProfilerHook(eval_flops_ratio=0)

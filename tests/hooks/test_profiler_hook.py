"""ProfilerHook: created at step 10 with a schedule counted from there, one Chrome trace per
cycle; failures leave training running."""

from __future__ import annotations

import json
import os

import pytest
import torch

from recis.hooks import ProfilerHook
from recis.hooks.initial_profiler_hook import USER_PROFILER_CREATE_STEP


def train_steps(hook, steps):
    """Call the hook as this package's trainer does (global step, then the step's metrics)."""
    weights = torch.randn(16, 16, requires_grad=True)
    for step in range(1, steps + 1):
        hook.before_step(step)
        (torch.randn(4, 16) @ weights).square().sum().backward()
        hook.after_step({"loss": 0.0}, step)
    hook.after_train()
    hook.end()


@pytest.mark.filterwarnings("ignore:Warning. Profiler clears events:UserWarning")
def test_a_chrome_trace_per_cycle_counted_from_step_ten(tmp_path):
    hook = ProfilerHook(wait=1, warmup=1, active=2, repeat=2, output_dir=str(tmp_path / "traces"))
    train_steps(hook, USER_PROFILER_CREATE_STEP - 1 + 8)
    names = sorted(os.listdir(tmp_path / "traces"))
    assert names == ["local-0-timeline-4.json", "local-0-timeline-8.json"]
    for name in names:
        with open(tmp_path / "traces" / name) as file:
            events = json.load(file)["traceEvents"]
        assert sum(e.get("name") == "aten::mm" for e in events) >= 2  # two recorded steps
    assert hook.traces == [str(tmp_path / "traces" / name) for name in names]


def test_nothing_is_profiled_before_step_ten(tmp_path, monkeypatch):
    monkeypatch.setenv("APP_ID", "job7")
    hook = ProfilerHook(wait=1, warmup=1, active=1, repeat=1, output_dir=str(tmp_path))
    train_steps(hook, USER_PROFILER_CREATE_STEP - 1)
    assert hook.prof is None and os.listdir(tmp_path) == []
    hook = ProfilerHook(wait=1, warmup=1, active=1, repeat=1, output_dir=str(tmp_path))
    train_steps(hook, USER_PROFILER_CREATE_STEP + 2)
    assert os.listdir(tmp_path) == ["job7-0-timeline-3.json"]


def test_wait_must_be_positive():
    with pytest.raises(ValueError, match="wait must be greater than 0"):
        ProfilerHook(wait=0)


def test_a_failing_profiler_is_reported_and_dropped(tmp_path, capsys, monkeypatch):
    hook = ProfilerHook(wait=1, warmup=1, active=1, repeat=1, output_dir=str(tmp_path))
    real = hook.get_prof_schedule

    def busy_profiler():
        prof = real()

        def busy():
            raise RuntimeError("profiler session busy")

        prof.step = busy
        return prof

    monkeypatch.setattr(hook, "get_prof_schedule", busy_profiler)
    train_steps(hook, USER_PROFILER_CREATE_STEP + 3)
    assert "profiler failed, training goes on without it: profiler session busy" in (
        capsys.readouterr().err
    )
    assert hook.prof is None and os.listdir(tmp_path) == []


def test_end_writes_a_cycle_cut_short_while_recording(tmp_path):
    hook = ProfilerHook(wait=1, warmup=1, active=3, repeat=1, output_dir=str(tmp_path))
    train_steps(hook, USER_PROFILER_CREATE_STEP + 2)  # steps 12 and on are recorded
    assert os.listdir(tmp_path) == ["local-0-timeline-3.json"]
    assert hook.prof is None

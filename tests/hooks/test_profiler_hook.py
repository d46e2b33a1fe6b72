"""ProfilerHook: one Chrome trace per cycle; failures leave training running."""

from __future__ import annotations

import json
import os

import pytest
import torch

from recis.hooks import ProfilerHook


def train_steps(hook, steps, call_before_train=True):
    if call_before_train:
        hook.before_train()
    weights = torch.randn(16, 16, requires_grad=True)
    for step in range(1, steps + 1):
        (torch.randn(4, 16) @ weights).square().sum().backward()
        hook.after_step({"loss": 0.0}, step)
    hook.after_train()
    hook.end()


@pytest.mark.filterwarnings("ignore:Warning. Profiler clears events:UserWarning")
def test_a_chrome_trace_per_cycle(tmp_path):
    hook = ProfilerHook(wait=1, warmup=1, active=2, repeat=2, output_dir=str(tmp_path / "traces"))
    train_steps(hook, 12)
    names = sorted(os.listdir(tmp_path / "traces"))
    assert names == ["local-0-timeline-4.json", "local-0-timeline-8.json"]
    for name in names:
        with open(tmp_path / "traces" / name) as file:
            events = json.load(file)["traceEvents"]
        assert any(e.get("name") == "aten::mm" for e in events)
    assert hook.traces == [str(tmp_path / "traces" / name) for name in names]


def test_without_before_train_the_first_step_starts_it(tmp_path, monkeypatch):
    monkeypatch.setenv("APP_ID", "job7")
    hook = ProfilerHook(wait=1, warmup=1, active=1, repeat=1, output_dir=str(tmp_path))
    train_steps(hook, 5, call_before_train=False)
    assert os.listdir(tmp_path) == ["job7-0-timeline-3.json"]


def test_a_failing_profiler_is_reported_and_dropped(tmp_path, capsys, monkeypatch):
    hook = ProfilerHook(wait=1, warmup=1, active=1, repeat=1, output_dir=str(tmp_path))
    hook.before_train()

    def busy():
        raise RuntimeError("profiler session busy")

    monkeypatch.setattr(hook._profiler, "step", busy)
    train_steps(hook, 3, call_before_train=False)
    assert "profiler failed, training goes on without it: profiler session busy" in (
        capsys.readouterr().err
    )
    assert os.listdir(tmp_path) == []

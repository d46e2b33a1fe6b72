"""MetricReportHook: QPS, FLOPS, MFU and table sizes reported every interval_step steps, read
back from the reporter's metric client."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from recis.hooks import MetricReportHook
from recis.hooks.monitor_report_hook import ReportArguments
from recis.monitor.flops_estimator import StepType, build_startup_flops_estimate
from recis.monitor.monitor_reporter import MonitorReporter
from recis.nn import HashTable


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.table = HashTable([4], name="user_emb")
        self.dense = nn.Linear(4, 1)


@pytest.fixture
def clock(monkeypatch):
    """time.monotonic advancing 0.5 s per call."""
    ticks = itertools.count(0.0, 0.5)
    monkeypatch.setattr("recis.hooks.monitor_report_hook.time.monotonic", lambda: next(ticks))


@pytest.fixture(autouse=True)
def empty_client():
    """The reporter's client without the points (sticky ones included) of other tests."""
    MonitorReporter.monitor_cli.take_snapshot()
    MonitorReporter.monitor_cli.reset_metric("ht_id_activate_size")


def snapshot():
    return {
        (s["name"], tuple(sorted(s["tags"].values()))): s["value"]
        for s in MonitorReporter.monitor_cli.take_snapshot()
    }


def test_a_report_every_interval_of_steps(clock):
    model = Model()
    model.table(torch.tensor([3, 5, 7]))
    hook = MetricReportHook(model, ReportArguments(interval_step=3, tflops_peak=10.0))
    hook.flops_state.set_estimate(
        build_startup_flops_estimate(
            total_flops=4e12,
            sample_step_type=StepType.TRAIN,
            sample_steps=1,
            eval_flops_ratio=0.5,
            scalar_tflops_peak=10.0,
        )
    )
    hook.args.eval_flops_ratio = 0.5
    for is_train in (True, True, False):
        hook.before_step(is_train=is_train)  # first call starts the window at t=0
        hook.after_step(is_train=is_train)
    # the window: 3 steps (2 training, 1 evaluation) over 1 s of the fake clock
    metrics = snapshot()
    assert metrics[("qps", ("qps",))] == 3.0
    assert metrics[("qps", ("train_qps",))] == 2.0
    assert metrics[("qps", ("eval_qps",))] == 1.0
    assert metrics[("flops", ("flops",))] == 4e12 * 2.5  # 2.5 training-step equivalents
    assert metrics[("flops", ("flops_peak",))] == 10e12
    assert metrics[("mfu", ("mfu",))] == 1.0  # 0.4 s ideal × 2.5 over 1 s
    assert metrics[("ht_id_activate_size", ("user_emb",))] == 3
    assert not MonitorReporter.reportable(force=False)


def test_without_a_startup_estimate_only_throughput_is_reported(clock):
    hook = MetricReportHook(nn.Linear(2, 2), ReportArguments(interval_step=100))
    hook.before_step(1)
    hook.after_step({"loss": 1.0}, 1)  # as this package's trainer calls it
    hook.end()  # the last, short window
    names = {name for name, _ in snapshot()}
    assert names == {"qps"}


def test_the_precision_comes_from_the_arguments_the_trainer_or_the_model():
    half = nn.Linear(2, 2).to(torch.bfloat16)
    assert MetricReportHook(half).precision_source == "model_parameters"
    assert MetricReportHook(half).precision.value == "bf16"
    assert MetricReportHook(half, mixed_precision="fp16").precision.value == "fp16"
    explicit = MetricReportHook(half, ReportArguments(compute_precision="fp32"))
    assert (explicit.precision.value, explicit.precision_source) == ("fp32", "explicit")
    assert explicit.scalar_tflops_peak is None  # no GPU here: no datasheet peak


def test_report_arguments_are_checked():
    assert ReportArguments(tflops_peak=0).tflops_peak is None
    with pytest.raises(ValueError, match="interval_step must be positive or None"):
        ReportArguments(interval_step=0)
    with pytest.raises(ValueError, match="Unsupported compute precision: fp7"):
        ReportArguments(compute_precision="fp7")

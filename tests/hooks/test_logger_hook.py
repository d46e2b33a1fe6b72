"""LoggerHook (plain lines and progress bar), Throughput, and the rank-0 Logger."""

from __future__ import annotations

import io
import re

import pytest

from recis.hooks import LoggerHook, logger_hook
from recis.hooks.logger_hook import Throughput
from recis.utils import logger as logger_module
from recis.utils.logger import Logger


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def run_steps(hook, steps, clock=None, batch_size=None, metrics=None):
    hook.before_train()
    for step in range(1, steps + 1):
        if clock is not None:
            clock.now += 1.0
        hook.after_step({"loss": 1.0 / step, "batch_size": batch_size, **(metrics or {})}, step)


def test_throughput_over_intervals_and_the_whole_run():
    clock = FakeClock()
    rate = Throughput(batch_size=10, clock=clock)
    rate.start()
    for size in (None, 30, None, 50):  # 10 (default), 30, 10, 50 samples in 4 s
        clock.now += 1.0
        rate.step({"batch_size": size})
    assert rate.interval() == (1.0, 25.0)
    clock.now += 4.0
    rate.step({})
    assert rate.interval() == (0.25, 2.5)
    assert rate.steps_per_second() == pytest.approx(5 / 8)


def test_plain_lines_every_log_step_with_rate_metrics_and_eta(capsys):
    clock = FakeClock()
    hook = LoggerHook(log_step=10, total_steps=30, progress=False)
    hook.throughput = Throughput(clock=clock)
    run_steps(hook, 20, clock, batch_size=256, metrics={"auc": 0.75, "step_seconds": 0.1})
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert re.fullmatch(
        r"\[.*\] \[INFO\] \[recis.hooks.LoggerHook\] step 10/30 \(33%\) \| 256 samples/s \| "
        r"loss 0.1  auc 0.75 \| ETA 0:00:20",
        lines[0],
    )
    assert lines[1].endswith("step 20/30 (67%) | 256 samples/s | loss 0.05  auc 0.75 | ETA 0:00:10")


def test_steps_per_second_without_batch_size_and_no_eta_without_total(capsys):
    clock = FakeClock()
    hook = LoggerHook(log_step=5, progress=False)
    hook.throughput = Throughput(clock=clock)
    run_steps(hook, 5, clock)
    assert capsys.readouterr().out.strip().endswith("step 5 | 1.00 steps/s | loss 0.2")


def test_progress_bar_on_a_terminal(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    clock, terminal = FakeClock(), Terminal()
    hook = LoggerHook(log_step=2, total_steps=4, stream=terminal)
    hook.throughput = Throughput(batch_size=64, clock=clock)
    run_steps(hook, 4, clock)
    hook.after_evaluate({"loss": 0.3, "auc": 0.8})
    drawn = terminal.getvalue().split("\r")
    assert drawn[1] == "step 2/4 [##########----------] 50% ETA 0:00:02 | 64 samples/s | loss 0.5"
    assert (
        drawn[2] == "step 4/4 [####################] 100% ETA 0:00:00 | 64 samples/s | loss 0.25\n"
    )
    out = capsys.readouterr().out  # the bar ends with a newline before the evaluation line
    assert "step" not in out and out.strip().endswith("evaluation | loss 0.3  auc 0.8")


def test_progress_bar_fits_the_terminal_width(monkeypatch):
    monkeypatch.setenv("COLUMNS", "31")
    terminal = Terminal()
    run_steps(LoggerHook(log_step=1, total_steps=9, stream=terminal), 2)
    assert terminal.getvalue().split("\r")[1:] == [
        "step 1/9 [##------------------",
        "step 2/9 [####----------------",
    ]


def test_no_report_off_rank_zero(capsys, monkeypatch):
    monkeypatch.setattr(logger_hook, "is_rank_zero", lambda: False)
    terminal = Terminal()
    run_steps(LoggerHook(log_step=1, stream=terminal), 3)
    assert terminal.getvalue() == "" and capsys.readouterr().out == ""


def test_logger_routes_levels_and_logs_rank0_only_on_rank_zero(capsys, monkeypatch):
    logger = Logger("recis.tests.routing")
    Logger("recis.tests.routing")  # a second wrapper adds no second set of handlers
    logger.info("to stdout")
    logger.warning("to stderr")
    logger.info_rank0("rank zero")
    out, err = capsys.readouterr()
    assert out.count("to stdout") == 1 and "rank zero" in out and "to stderr" not in out
    assert err.count("[WARNING] [recis.tests.routing] to stderr") == 1
    monkeypatch.setattr(logger_module, "distributed_rank", lambda: 1)
    logger.info_rank0("hidden")
    logger.error_rank0("hidden")
    logger.info("every rank")
    out, err = capsys.readouterr()
    assert "hidden" not in out + err and "every rank" in out


def test_rank_comes_from_an_initialised_process_group(tmp_path):
    import torch.distributed as dist

    assert logger_module.distributed_rank() == 0
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'g'}", rank=0, world_size=1)
    try:
        assert logger_module.is_rank_zero()
    finally:
        dist.destroy_process_group()


def test_log_step_must_be_positive():
    with pytest.raises(ValueError, match="log_step"):
        LoggerHook(log_step=0)

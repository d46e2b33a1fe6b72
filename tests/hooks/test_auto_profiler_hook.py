"""The automatic profiler: which ranks get one, and the timeline it writes."""

from __future__ import annotations

import gzip
import json
import os

import pytest
import torch

from recis.hooks.auto_profiler_hook import (
    AutoProfilerArguments,
    _build_auto_profiler,
    _LocalTimelineProfilerHook,
)
from recis.hooks.initial_profiler_hook import USER_PROFILER_CREATE_STEP


@pytest.mark.parametrize(
    ("ranks", "world_size", "profiled"),
    [([0], 4, [0]), (None, 3, [0, 1, 2]), ([1, 3, 9, -1], 4, [1, 3])],
)
def test_the_ranks_that_get_a_profiler(ranks, world_size, profiled, monkeypatch):
    monkeypatch.delenv("RECIS_PROFILER_ON", raising=False)
    args = AutoProfilerArguments(ranks=ranks)
    built = [r for r in range(world_size) if _build_auto_profiler(args, r, world_size)]
    assert built == profiled
    monkeypatch.setenv("RECIS_PROFILER_ON", "0")
    assert _build_auto_profiler(args, profiled[0], world_size) is None


def test_a_gzip_timeline_named_for_the_job_rank_and_start(tmp_path, monkeypatch):
    monkeypatch.setenv("APP_ID", "job9")
    monkeypatch.setattr(
        "recis.hooks.auto_profiler_hook._AUTO_PROFILER_OUTPUT_DIR", str(tmp_path / "traces")
    )
    hook = _LocalTimelineProfilerHook(rank=2, wait=1, warmup=1, active=1)
    for _ in range(USER_PROFILER_CREATE_STEP + 2):
        hook.before_step()
        torch.mm(torch.ones(5, 5), torch.ones(5, 5))
        hook.after_step()
    (name,) = os.listdir(tmp_path / "traces")
    assert name == f"job9-002-timeline-3-{hook._run_datetime}.json.gz"
    with gzip.open(tmp_path / "traces" / name) as file:
        events = json.load(file)["traceEvents"]
    assert any(e.get("name") == "aten::mm" for e in events)

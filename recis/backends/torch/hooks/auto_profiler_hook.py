"""The profiler RecIS's trainer adds by itself: one timeline of a few steps, on chosen ranks.

:func:`_build_auto_profiler` gives a :class:`_LocalTimelineProfilerHook` for this rank when
automatic profiling is on (``AutoProfilerArguments.enabled``, and ``RECIS_PROFILER_ON`` unset or
``"1"``) and the rank is one of ``ranks`` (default ``[0]``; None: every rank; ranks outside the
world are dropped with a warning). Its gzip timelines go to ``/var/log/recis_auto_profiler_traces``
as ``<APP_ID>-<rank, 3 digits>-timeline-<step>-<UTC start time>.json.gz``: the start time keeps
the traces of a restarted job apart.

>>> _build_auto_profiler(AutoProfilerArguments(ranks=[1]), rank=0, world_size=2) is None
True
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, timezone

from recis.backends.torch.hooks import profiler_hook
from recis.backends.torch.hooks.profiler_hook import ProfilerHook, run_with_timeout
from recis.backends.torch.recis_path import serve_at_recis_path
from recis.utils.logger import Logger

_AUTO_PROFILER_OUTPUT_DIR = "/var/log/recis_auto_profiler_traces"
_TRACE_SAVE_TIMEOUT = profiler_hook._TRACE_SAVE_TIMEOUT
_auto_profiler_logger = Logger("AutoProfiler")


@dataclass
class AutoProfilerArguments:
    """Whether and how the trainer profiles by itself.

    Args:
        enabled: profile (``RECIS_PROFILER_ON`` other than ``"1"`` turns it off regardless).
        ranks: global ranks profiled (None: all).
        wait, warmup, active, repeat: the schedule, counted from step 10 (see
            :class:`~recis.hooks.profiler_hook.ProfilerHook`).
    """

    enabled: bool = True
    ranks: list[int] | None = field(default_factory=lambda: [0])
    wait: int = 100
    warmup: int = 1
    active: int = 1
    repeat: int = 1

    def __post_init__(self) -> None:
        if self.wait <= 0:
            raise ValueError("AutoProfilerArguments.wait must be greater than 0")
        if self.warmup < 0:
            raise ValueError("AutoProfilerArguments.warmup must not be negative")
        if self.active < 1:
            raise ValueError("AutoProfilerArguments.active must be at least 1")
        if self.repeat < 1:
            raise ValueError("AutoProfilerArguments.repeat must be at least 1")
        ranks = self.ranks or []
        if any(isinstance(r, bool) or not isinstance(r, int) for r in ranks):
            raise ValueError(f"AutoProfilerArguments.ranks must be integers, got {self.ranks}")


class _LocalTimelineProfilerHook(ProfilerHook):
    """A :class:`ProfilerHook` writing gzip timelines to the fixed log directory."""

    def __init__(self, rank: int, wait=100, warmup=1, active=1, repeat=1) -> None:
        self._rank = rank
        self._app_id = os.environ.get("APP_ID", "local")
        self._run_datetime = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        super().__init__(wait, warmup, active, repeat, output_dir=_AUTO_PROFILER_OUTPUT_DIR)

    def _build_file_name(self, step_num: int) -> str:
        app, rank, started = self._app_id, self._rank, self._run_datetime
        return f"{app}-{rank:03d}-timeline-{step_num}-{started}.json.gz"

    def get_trace_handler(self):
        def write_timeline(prof) -> None:
            path = os.path.join(self.output_dir, self._build_file_name(prof.step_num))

            def save() -> None:
                os.makedirs(self.output_dir, exist_ok=True)
                prof.export_chrome_trace(path)
                self.traces.append(path)
                self.logger.info("profiler timeline written to %s", path)

            run_with_timeout(save, _TRACE_SAVE_TIMEOUT, f"writing timeline {path}", self.logger)

        return write_timeline


def _resolve_auto_profiler_ranks(ranks, world_size: int, rank: int) -> list[int]:
    """The ranks to profile among ``range(world_size)`` (warnings on rank 0 only)."""
    if ranks is None:
        chosen = list(range(world_size))
    else:
        outside = sorted({r for r in ranks if not 0 <= r < world_size})
        if outside and rank == 0:
            _auto_profiler_logger.warning(
                "auto profiler: ranks %s ignored (world size %s)", outside, world_size
            )
        chosen = sorted({r for r in ranks if 0 <= r < world_size})
    if len(chosen) > 8 and rank == 0:
        _auto_profiler_logger.warning(
            "auto profiler on %s ranks: its time and storage grow with each", len(chosen)
        )
    return chosen


def _build_auto_profiler(args: AutoProfilerArguments, rank: int, world_size: int):
    """This rank's automatic profiler hook, or None (see the module docstring)."""
    if os.environ.get("RECIS_PROFILER_ON", "1") != "1" or not args.enabled:
        return None
    if rank not in _resolve_auto_profiler_ranks(args.ranks, world_size, rank):
        return None
    schedule = {"wait": args.wait, "warmup": args.warmup, "active": args.active}
    return _LocalTimelineProfilerHook(rank=rank, repeat=args.repeat, **schedule)


serve_at_recis_path(__name__, "recis.hooks.auto_profiler_hook")

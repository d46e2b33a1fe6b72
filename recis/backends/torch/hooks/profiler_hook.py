"""``ProfilerHook``: torch profiler traces of a few training steps (RecIS API).

The hook counts the steps it sees. At step 10 (:data:`USER_PROFILER_CREATE_STEP`, after RecIS's
startup FLOPS profiler has closed: only one profiler may run at a time) it creates a profiler
whose schedule ``wait, warmup, active, repeat`` counts from there — with ``wait=1, warmup=1,
active=1`` step 12 is recorded. ``wait`` must be at least 1, so that the profiler starts idle.
Each recorded cycle is written as a Chrome trace (``chrome://tracing`` or Perfetto) to
``<output_dir>/<APP_ID>-<RANK>-timeline-<step>.json`` (``APP_ID`` default ``local``; ``<step>``
counts from the profiler's creation); the file names are kept in ``traces``. CPU activity is
recorded, and CUDA activity where a GPU is present, with shapes, memory, stacks and FLOPs;
``profile_options`` overrides those settings. A profiler that fails (another one holds the
session) is reported and dropped, and a trace that takes longer than ``_TRACE_SAVE_TIMEOUT``
seconds to write is abandoned: training goes on either way.

>>> import torch, tempfile, os
>>> directory = tempfile.mkdtemp()
>>> hook = ProfilerHook(wait=1, warmup=1, active=1, repeat=1, output_dir=directory)
>>> for step in range(1, 14):  # doctest: +ELLIPSIS
...     hook.before_step()
...     _ = torch.ones(8) @ torch.ones(8)
...     hook.after_step()
[...] [INFO] [ProfilerHook] profiler trace written to .../local-0-timeline-3.json
>>> os.listdir(directory)
['local-0-timeline-3.json']
"""

from __future__ import annotations

import os
import threading
import traceback

import torch
from torch.profiler import ProfilerActivity, profile, schedule

from recis.backends.torch.hooks.initial_profiler_hook import USER_PROFILER_CREATE_STEP
from recis.backends.torch.recis_path import serve_at_recis_path
from recis.hooks.hook import Hook
from recis.utils.logger import Logger, distributed_rank

# seconds a trace may take to be written before it is abandoned (a stuck file system must not
# stall training)
_TRACE_SAVE_TIMEOUT = 600

DEFAULT_OPTIONS = {
    "record_shapes": True,
    "profile_memory": True,
    "with_stack": True,
    "with_flops": True,
}


def run_with_timeout(action, timeout: float, what: str, logger: Logger) -> bool:
    """Run ``action()`` in a daemon thread for at most ``timeout`` seconds; False (logged as an
    error) when it failed or is still running then (it is left to finish on its own)."""
    failure: list[str] = []

    def run() -> None:
        try:
            action()
        except BaseException:  # reported below, whatever it is
            failure.append(traceback.format_exc())

    worker = threading.Thread(target=run, name="recis-trace-save", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        logger.error("%s timed out after %ss; this trace is abandoned", what, timeout)
        return False
    if failure:
        logger.error("%s failed:\n%s", what, failure[0])
        return False
    return True


class ProfilerHook(Hook):
    """Profile training steps on a schedule (see the module docstring).

    Args:
        wait, warmup, active, repeat: the profiler schedule, counted from step 10.
        output_dir: directory of the traces (created when needed).
        profile_options: keyword arguments of ``torch.profiler.profile`` replacing the
            defaults above (e.g. ``{"with_stack": False}`` for smaller traces).

    Raises:
        ValueError: ``wait`` is below 1.
    """

    def __init__(
        self,
        wait: int = 1,
        warmup: int = 48,
        active: int = 1,
        repeat: int = 4,
        output_dir: str = "./",
        profile_options: dict | None = None,
    ) -> None:
        self.logger = Logger("ProfilerHook")
        if wait <= 0:
            raise ValueError("ProfilerHook wait must be greater than 0")
        self.wait, self.warmup, self.active, self.repeat = wait, warmup, active, repeat
        self.output_dir = output_dir
        self.options = {**DEFAULT_OPTIONS, **(profile_options or {})}
        self.traces: list[str] = []
        self.prof: profile | None = None
        self.prof_step_count = 0

    def get_trace_handler(self):
        """The ``on_trace_ready`` callback: write the trace (bounded in time)."""

        def write_trace(prof) -> None:
            app = os.environ.get("APP_ID", "local")
            path = os.path.join(
                self.output_dir, f"{app}-{distributed_rank()}-timeline-{prof.step_num}.json"
            )

            def save() -> None:
                os.makedirs(self.output_dir, exist_ok=True)
                prof.export_chrome_trace(path)
                self.traces.append(path)
                self.logger.info("profiler trace written to %s", path)

            run_with_timeout(
                save, _TRACE_SAVE_TIMEOUT, f"writing profiler trace {path}", self.logger
            )

        return write_trace

    def get_prof_schedule(self) -> profile:
        """A new profiler following this hook's schedule (not started: steps drive it)."""
        activities = [ProfilerActivity.CPU]
        if torch.cuda.is_available():
            activities.append(ProfilerActivity.CUDA)
        steps = schedule(wait=self.wait, warmup=self.warmup, active=self.active, repeat=self.repeat)
        return profile(
            activities=activities,
            schedule=steps,
            on_trace_ready=self.get_trace_handler(),
            **self.options,
        )

    def before_step(self, *args, **kwargs) -> None:
        if self.prof_step_count + 1 != USER_PROFILER_CREATE_STEP:
            return
        try:
            self.prof = self.get_prof_schedule()
        except Exception:
            self.logger.error("profiler not created:\n%s", traceback.format_exc())

    def after_step(self, *args, **kwargs) -> None:
        self.prof_step_count += 1
        if self.prof_step_count < USER_PROFILER_CREATE_STEP or self.prof is None:
            return
        try:
            self.prof.step()
        except Exception as error:  # another profiler may hold the session
            self.prof = None
            self.logger.error("profiler failed, training goes on without it: %s", error)

    def end(self, *args, **kwargs) -> None:
        """Close a profiler still warming up or recording (a cycle cut short while recording is
        written as it stands)."""
        if self.prof is not None and self.prof.profiler is not None:
            self.prof.stop()
        self.prof = None


serve_at_recis_path(__name__, "recis.hooks.profiler_hook")

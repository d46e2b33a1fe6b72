"""``ProfilerHook``: torch profiler traces of a few training steps (RecIS API).

The profiler follows ``torch.profiler.schedule(wait, warmup, active, repeat)`` over training
steps: each cycle skips ``wait`` steps, warms up for ``warmup`` and records ``active`` steps,
then writes a Chrome trace (``chrome://tracing`` or Perfetto) to
``<output_dir>/<APP_ID>-<rank>-timeline-<step>.json`` (``APP_ID`` from the environment, default
``local``). It records CPU activity, and CUDA activity when a GPU is present, with shapes,
memory, stacks and FLOPs, as RecIS does; ``profile_options`` overrides those settings.

The profiler starts at ``before_train`` (or the first ``after_step``, if the trainer does not
call ``before_train``) and each ``after_step`` ends a profiled step; ``after_train``/``end``
stop it. A profiler that fails (e.g. because another one holds the session) is reported and
left off, so training goes on.

>>> import torch, tempfile, os
>>> directory = tempfile.mkdtemp()
>>> hook = ProfilerHook(wait=1, warmup=1, active=1, repeat=1, output_dir=directory)
>>> hook.before_train()
>>> for step in range(1, 5):  # doctest: +ELLIPSIS
...     _ = torch.ones(8) @ torch.ones(8)
...     hook.after_step({}, step)
[...] [INFO] [recis.hooks.ProfilerHook] profiler trace written to .../local-0-timeline-3.json
>>> hook.end()
>>> os.listdir(directory)
['local-0-timeline-3.json']
"""

from __future__ import annotations

import os

import torch
from torch.profiler import ProfilerActivity, profile, schedule

from recis.hooks.hook import Hook
from recis.utils.logger import Logger, distributed_rank

DEFAULT_OPTIONS = {
    "record_shapes": True,
    "profile_memory": True,
    "with_stack": True,
    "with_flops": True,
}


class ProfilerHook(Hook):
    """Profile training steps on a schedule (see the module docstring).

    Args:
        wait, warmup, active, repeat: the profiler schedule (steps; ``repeat`` cycles).
        output_dir: directory of the traces (created when needed).
        profile_options: keyword arguments for ``torch.profiler.profile`` that replace the
            defaults above (e.g. ``{"with_stack": False}`` for smaller traces).
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
        if wait < 0 or warmup < 0 or active < 1 or repeat < 0:
            raise ValueError(
                f"need wait >= 0, warmup >= 0, active >= 1, repeat >= 0; got "
                f"wait={wait}, warmup={warmup}, active={active}, repeat={repeat}"
            )
        self.wait, self.warmup, self.active, self.repeat = wait, warmup, active, repeat
        self.output_dir = output_dir
        self.options = {**DEFAULT_OPTIONS, **(profile_options or {})}
        self.logger = Logger("recis.hooks.ProfilerHook")
        self.traces: list[str] = []
        self._profiler: profile | None = None
        self._state = "idle"  # idle, running, stopped or failed

    def before_train(self) -> None:
        if self._state == "idle":
            self._start()

    def after_step(self, metrics: dict | None = None, global_step: int = 0) -> None:
        if self._state == "idle":
            self._start()
        elif self._state == "running":
            try:
                self._profiler.step()
            except RuntimeError as error:
                self._give_up(error)

    def after_train(self) -> None:
        self._stop()

    def end(self) -> None:
        self._stop()

    def _start(self) -> None:
        activities = [ProfilerActivity.CPU]
        if torch.cuda.is_available():
            activities.append(ProfilerActivity.CUDA)
        steps = schedule(wait=self.wait, warmup=self.warmup, active=self.active, repeat=self.repeat)
        self._profiler = profile(
            activities=activities, schedule=steps, on_trace_ready=self._save, **self.options
        )
        try:
            self._profiler.start()
        except RuntimeError as error:
            self._give_up(error)
            return
        self._state = "running"

    def _give_up(self, error: RuntimeError) -> None:
        self.logger.error("profiler failed, training goes on without it: %s", error)
        self._profiler = None
        self._state = "failed"

    def _stop(self) -> None:
        if self._state == "running":
            self._profiler.stop()
            self._state = "stopped"

    def _save(self, profiler: profile) -> None:
        os.makedirs(self.output_dir, exist_ok=True)
        app = os.environ.get("APP_ID", "local")
        name = f"{app}-{distributed_rank()}-timeline-{profiler.step_num}.json"
        path = os.path.join(self.output_dir, name)
        profiler.export_chrome_trace(path)
        self.traces.append(path)
        self.logger.info("profiler trace written to %s", path)

"""Training hooks.

The hooks are imported on first use, so that a front end imports only those it needs (the torch
ones — filter, profiler, metric report — are never loaded by a JAX run).
"""

from __future__ import annotations

import importlib

_MODULES = {
    "HashTableFilterHook": "recis.backends.torch.hooks.filter_hook",
    "Hook": "recis.hooks.hook",
    "LoggerHook": "recis.hooks.logger_hook",
    "MetricReportHook": "recis.backends.torch.hooks.monitor_report_hook",
    "PlotHook": "recis.hooks.plot_hook",
    "ProfilerHook": "recis.backends.torch.hooks.profiler_hook",
    "TensorBoardHook": "recis.hooks.tensorboard_hook",
    "_InitialProfilerHook": "recis.backends.torch.hooks.initial_profiler_hook",
}

__all__ = sorted(_MODULES)


def __getattr__(name: str):
    if name not in _MODULES:
        raise AttributeError(f"module 'recis.hooks' has no attribute {name!r}")
    return getattr(importlib.import_module(_MODULES[name]), name)


def __dir__() -> list[str]:
    return __all__

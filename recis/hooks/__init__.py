"""Training hooks."""

from recis.hooks.filter_hook import HashTableFilterHook
from recis.hooks.hook import Hook
from recis.hooks.logger_hook import LoggerHook
from recis.hooks.plot_hook import PlotHook
from recis.hooks.profiler_hook import ProfilerHook
from recis.hooks.tensorboard_hook import TensorBoardHook

__all__ = [
    "HashTableFilterHook",
    "Hook",
    "LoggerHook",
    "PlotHook",
    "ProfilerHook",
    "TensorBoardHook",
]

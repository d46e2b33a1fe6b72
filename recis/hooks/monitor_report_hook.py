"""RecIS's import path for :mod:`recis.backends.torch.hooks.monitor_report_hook`: importing it
gives that very module (see :mod:`recis.backends.torch.recis_path`)."""

from recis.backends.torch.hooks.monitor_report_hook import (
    MetricReportHook,
    ReportArguments,
)

__all__ = [
    "MetricReportHook",
    "ReportArguments",
]

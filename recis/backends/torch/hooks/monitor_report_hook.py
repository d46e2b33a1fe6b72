"""``MetricReportHook``: throughput, FLOPS and MFU every ``interval_step`` steps (RecIS API).

Every ``interval_step`` steps (training and evaluation steps together; the last, shorter window at
``end``) the hook reports through :class:`~recis.monitor.monitor_reporter.MonitorReporter`:

* ``qps`` tagged ``recis_qps_type`` = ``qps``, ``train_qps``, ``eval_qps``: steps per second;
* once the startup estimate (:mod:`recis.hooks.initial_profiler_hook`) is published, ``flops``
  tagged ``recis_flops_type`` = ``flops``: the window's FLOPS per second, evaluation steps
  counted as ``eval_flops_ratio`` of a training step; where the estimate has an ideal step time,
  ``flops`` tagged ``flops_peak`` (the dtype-weighted peak) and ``mfu``: ideal time over elapsed
  time, rounded to 5 digits;
* ``ht_id_activate_size`` tagged ``recis_ht_name``: the ids each hash table of the model holds.

The peak comes from ``tflops_peak`` when it is positive, else from ``compute_precision`` and the
device's datasheet, else from the startup profile's input dtypes.

>>> import torch
>>> hook = MetricReportHook(torch.nn.Linear(2, 2), ReportArguments(interval_step=2))
... # doctest: +ELLIPSIS
[...] [INFO] [recis.hooks.MetricReportHook] peak TFLOPS: from the input dtypes of the startup ...
>>> hook.precision, hook.collect_input_dtypes
(<Precision.fp32: 'fp32'>, True)
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from recis.backends.torch.hashtable import filter_out_sparse_param
from recis.backends.torch.hooks.initial_profiler_hook import is_train_step
from recis.backends.torch.monitor.monitor_reporter import (
    EVAL_QPS_NAME,
    FLOPS_NAME,
    FLOPS_PEAK,
    HT_ID_ACT_SIZE,
    MFU_NAME,
    PREPARE_NAME,
    QPS_NAME,
    TRAIN_QPS_NAME,
    MonitorReporter,
)
from recis.backends.torch.recis_path import serve_at_recis_path
from recis.hooks.hook import Hook
from recis.monitor.flops_estimator import StartupFlopsState
from recis.monitor.gpuinfo_inquirer import Inquirer, Precision
from recis.utils.logger import Logger

logger = Logger("recis.hooks.MetricReportHook")

_PRECISION_OF_DTYPE = {
    torch.float32: Precision.fp32,
    torch.float16: Precision.fp16,
    torch.bfloat16: Precision.bf16,
    torch.int8: Precision.int8,
}


@dataclass
class ReportArguments:
    """When and how the metrics are reported.

    Args:
        interval_step: steps per report (None: never).
        tflops_peak: the device's peak TFLOPS; not positive (default): found another way.
        compute_precision: the precision whose datasheet peak to use (a ``Precision`` or its
            name).
        eval_flops_ratio: FLOPS of an evaluation step relative to a training step.
        min_peak_coverage: share of the FLOPS that need a known peak for MFU to be reported.
    """

    interval_step: int | None = 100
    tflops_peak: float | None = -1
    compute_precision: Precision | None = None
    eval_flops_ratio: float = 1.0 / 3.0
    min_peak_coverage: float = 0.99

    def __post_init__(self) -> None:
        if self.interval_step is not None and self.interval_step <= 0:
            raise ValueError("interval_step must be positive or None")
        positive = self.tflops_peak is not None and float(self.tflops_peak) > 0
        self.tflops_peak = float(self.tflops_peak) if positive else None
        if isinstance(self.compute_precision, str):
            try:
                self.compute_precision = Precision(self.compute_precision.lower())
            except ValueError:
                raise ValueError(
                    f"Unsupported compute precision: {self.compute_precision}"
                ) from None
        if self.eval_flops_ratio <= 0:
            raise ValueError("eval_flops_ratio must be positive")
        if not 0 < self.min_peak_coverage <= 1:
            raise ValueError("min_peak_coverage must be in (0, 1]")


class MetricReportHook(Hook):
    """Report the metrics of the module docstring.

    Args:
        model: the model (its parameters' dtype is the precision of last resort; its hash
            tables are reported).
        report_args: :class:`ReportArguments` (defaults when None).
        mixed_precision: the trainer's autocast precision (``"bf16"``, ``"fp16"``).
        flops_state: the startup estimate, shared with the startup profiler hook.
    """

    def __init__(self, model, report_args=None, mixed_precision=None, flops_state=None) -> None:
        super().__init__()
        self.model = model
        self.args = report_args if report_args is not None else ReportArguments()
        self.flops_state = flops_state or StartupFlopsState()
        self.precision, self.precision_source = self._resolve_precision(mixed_precision)
        self.scalar_tflops_peak = None
        self.collect_input_dtypes = False
        if self.args.tflops_peak is not None:
            self.scalar_tflops_peak = self.args.tflops_peak
            self.scalar_precision_basis = "explicit_tflops_peak"
        elif self.args.compute_precision is not None:
            peak = Inquirer.get_peak_tflops(device_index=0, precision=self.args.compute_precision)
            self.scalar_tflops_peak = self.args.tflops_peak = peak
            self.scalar_precision_basis = "explicit_compute_precision"
        else:
            self.collect_input_dtypes = True
            self.scalar_precision_basis = "operator_input_dtype"
        self._log_peak()
        self.hashtables = filter_out_sparse_param(model)
        self._reset()

    def _resolve_precision(self, mixed_precision):
        if self.args.compute_precision is not None:
            return self.args.compute_precision, "explicit"
        if mixed_precision:
            try:
                return Precision(mixed_precision.lower()), "accelerator"
            except ValueError:
                logger.warning("unknown mixed precision %r: using the model's", mixed_precision)
        parameters = [*self.model.parameters(), *self.model.buffers()]
        dtype = parameters[0].dtype if parameters else torch.float32
        return _PRECISION_OF_DTYPE.get(dtype, Precision.fp32), "model_parameters"

    def _log_peak(self) -> None:
        if self.collect_input_dtypes:
            logger.info("peak TFLOPS: from the input dtypes of the startup profile")
        elif self.scalar_tflops_peak is None:
            logger.warning(
                "no peak TFLOPS for %s (%s): MFU is not reported, FLOPS and QPS are",
                self.precision.value,
                self.precision_source,
            )
        else:
            logger.info("peak TFLOPS %s (%s)", self.scalar_tflops_peak, self.precision.value)

    def _reset(self) -> None:
        self.train_steps = self.eval_steps = 0
        self.interval_time = self.step_time = None

    @property
    def _window_steps(self) -> int:
        return self.train_steps + self.eval_steps

    def _report_metrics(self) -> None:
        steps = self._window_steps
        if self.interval_time is None or steps == 0:
            return
        seconds = max(time.monotonic() - self.interval_time, 1e-12)
        for kind, count in ((QPS_NAME, steps), (TRAIN_QPS_NAME, self.train_steps)):
            MonitorReporter.report(QPS_NAME, count / seconds, {"recis_qps_type": kind})
        MonitorReporter.report(
            QPS_NAME, self.eval_steps / seconds, {"recis_qps_type": EVAL_QPS_NAME}
        )
        self._report_flops(seconds)
        for name, table in self.hashtables.items():
            size = len(table.table)
            MonitorReporter.report(
                HT_ID_ACT_SIZE, size, {"recis_ht_name": name}, type="gauge_sticky"
            )

    def _report_flops(self, seconds: float) -> None:
        estimate = self.flops_state.estimate
        if estimate is None:
            reason = self.flops_state.invalid_reason or "startup_estimate_pending"
            logger.warning("no FLOPS/MFU yet: %s (%s steps)", reason, self._window_steps)
            return
        train_equivalent = self.train_steps + self.args.eval_flops_ratio * self.eval_steps
        flops = estimate.train_equiv_flops_per_step * train_equivalent / seconds
        MonitorReporter.report(FLOPS_NAME, flops, {"recis_flops_type": FLOPS_NAME})
        ideal = estimate.train_equiv_ideal_seconds_per_step
        if ideal is None:
            return
        if estimate.mixed_tflops_peak is not None:
            peak = estimate.mixed_tflops_peak * 1e12
            MonitorReporter.report(FLOPS_NAME, peak, {"recis_flops_type": FLOPS_PEAK})
        mfu = round(ideal * train_equivalent / seconds, 5)
        MonitorReporter.report(MFU_NAME, mfu, {"recis_mfu_type": MFU_NAME})

    def _flush(self) -> None:
        try:
            if self.args.interval_step is not None and self._window_steps > 0:
                MonitorReporter.set_reportable(True)
                self._report_metrics()
        finally:
            self._reset()
            MonitorReporter.set_reportable(False)

    def before_step(self, *args, **kwargs) -> None:
        if self.args.interval_step is None:
            return
        if self._window_steps == 0 and self.interval_time is None:
            self.interval_time = time.monotonic()
        if self._window_steps + 1 >= self.args.interval_step:
            self.step_time = time.monotonic()
            MonitorReporter.set_reportable(True)  # the reporting step's own timings count

    def after_step(self, is_train=True, *args, **kwargs) -> None:
        if is_train_step(is_train):
            self.train_steps += 1
        else:
            self.eval_steps += 1
        interval = self.args.interval_step
        if interval is not None and self._window_steps >= interval:
            self._flush()

    def after_data(self, *args, **kwargs) -> None:
        """Report how long the batch took to prepare (on a reporting step)."""
        if self.step_time is not None:
            MonitorReporter.report(PREPARE_NAME, (time.monotonic() - self.step_time) * 1000)

    def end(self, *args, **kwargs) -> None:
        self._flush()

    def after_train(self, *args, **kwargs) -> None:
        """Nothing: a window goes on across training and evaluation until ``end``."""

    after_eval = after_train


serve_at_recis_path(__name__, "recis.hooks.monitor_report_hook")

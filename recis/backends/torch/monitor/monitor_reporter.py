"""``MonitorReporter``: the one place training code reports metrics through (RecIS API).

Reports go to the ``"recis.framework"`` client of :func:`recis.monitor.monitor.GetFactory` —
only while reporting is switched on (:meth:`MonitorReporter.set_reportable`, which the metric
hook does every ``interval_step`` steps) or when a call passes ``force=True``. Timings wait for
the work queued on the current CUDA stream (not the whole device: a prefetch stream runs beside
it), and only once CUDA is initialised.

>>> MonitorReporter.set_reportable(True)
>>> with MonitorReporter.report_time("load"):
...     pass
>>> MonitorReporter.report(QPS_NAME, 250.0, {"recis_qps_type": TRAIN_QPS_NAME})
>>> MonitorReporter.set_reportable(False)
>>> [(s["name"], s["tags"]) for s in MonitorReporter.monitor_cli.take_snapshot()]
[('load', {}), ('qps', {'recis_qps_type': 'train_qps'})]
"""

from __future__ import annotations

import functools
import time
from contextlib import contextmanager

import torch

from recis.monitor.monitor import GetFactory, PointType
from recis.utils.logger import Logger

TAG_MAP = {
    "gauge": PointType.kGauge,
    "gauge_sticky": PointType.kGaugeSticky,
    "counter": PointType.kCounter,
    "summary": PointType.kSummary,
}
PREPARE_NAME = "prepare"
MODEL_FWD_NAME = "model_forward"
SPARSE_FWD_NAME = "sparse_forward"
FEA_ENGINE_NAME = "feature_engine"
EMB_ENGINE_NAME = "embedding_engine"
EMB_BYTES_NAME = "embedding_bytes"
REDUCE_EMB_BYTES_NAME = "reduce_embedding_bytes"
ID_SIZE_NAME = "id_size"
UNIQUE_ID_SIZE_NAME = "unique_id_size"
ID_SIZE_A2A_TIME_NAME = "id_size_a2a_time"
QPS_NAME = "qps"
FLOPS_NAME = "flops"
FLOPS_PEAK = "flops_peak"
MFU_NAME = "mfu"
TRAIN_QPS_NAME = "train_qps"
EVAL_QPS_NAME = "eval_qps"
HT_ID_ACT_SIZE = "ht_id_activate_size"
HT_ID_TOTAL_SIZE = "ht_id_total_size"
HT_ALLOCATOR_ID_ACT_SIZE = "ht_allocator_id_activate_size"
HT_ALLOCATOR_ID_TOTAL_SIZE = "ht_allocator_id_total_size"
HT_ID_TOTAL_BYTES = "ht_id_memory"
HT_EMB_BYTES = "ht_emb_memory"
HT_ALL_SLOT_BYTES = "ht_all_slot_memory"
DS_END_LATENCY = "dataset_end.latency"
LOAD_SIZE_NAME = "load_size"
LOAD_TIME_NAME = "load_time"
SAVE_TIME_NAME = "save_time"


class MonitorReporter:
    """Class-level reporter (see the module docstring); ``type`` is a key of ``TAG_MAP``."""

    _reportable = False
    logger = Logger("recis.monitor.MonitorReporter")
    monitor_prefix = "recis.framework"
    monitor_cli = GetFactory().get_client(monitor_prefix)

    @classmethod
    def set_reportable(cls, reportable: bool) -> None:
        cls._reportable = reportable

    @classmethod
    def reportable(cls, force: bool) -> bool:
        return cls._reportable or force

    @classmethod
    def report(cls, metric_name, metric_val, tag=None, force=False, type="gauge") -> None:
        if cls.reportable(force):
            cls.monitor_cli.report(metric_name, metric_val, tag or {}, TAG_MAP[type])

    @classmethod
    def report_size(cls, metric_name, tensor, tag=None, force=False, type="gauge") -> None:
        """Report ``tensor``'s number of elements."""
        cls.report(metric_name, tensor.numel(), tag=tag, force=force, type=type)

    @classmethod
    def report_bytes(cls, metric_name, tensor, tag=None, force=False, type="gauge") -> None:
        """Report ``tensor``'s size in bytes."""
        size = tensor.numel() * tensor.element_size()
        cls.report(metric_name, size, tag=tag, force=force, type=type)

    @classmethod
    @contextmanager
    def report_time(cls, metric_name, tag=None, force=False, type="gauge"):
        """Report the milliseconds the block takes (its queued CUDA work included)."""
        if not cls.reportable(force):
            yield
            return
        start = time.time()
        try:
            yield
        finally:
            if torch.cuda.is_initialized():
                torch.cuda.current_stream().synchronize()
            elapsed_ms = (time.time() - start) * 1000
            cls.report(metric_name, elapsed_ms, tag=tag, force=force, type=type)

    @classmethod
    def report_time_wrapper(cls, metric_name, tag=None, force=False, type="gauge"):
        """Decorator: report each call's time as :meth:`report_time` does."""

        def decorator(function):
            @functools.wraps(function)
            def timed(*args, **kwargs):
                with cls.report_time(metric_name, tag=tag, force=force, type=type):
                    return function(*args, **kwargs)

            return timed

        return decorator

    @classmethod
    def report_forward(cls, model, metric_name, tag=None, force=False, type="gauge"):
        """Time every call of ``model.forward``; returns ``model``."""
        wrap = cls.report_time_wrapper(metric_name, tag=tag, force=force, type=type)
        model.forward = wrap(model.forward)
        return model

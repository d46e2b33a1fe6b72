"""``TensorBoardHook``: training scalars as TensorBoard event files, written on rank 0.

Every ``every`` steps it writes, at the global step:

- ``train/<name>``: each scalar metric of the step (loss, AUC, epoch, ...);
- ``train/samples_per_sec`` (``train/steps_per_sec`` without batch sizes), over the interval
  since the previous write; the batch size comes as for :class:`~recis.hooks.LoggerHook`;
- ``table/<table>/<stat>``: for each hash table, its ``size``, ``capacity``, ``load_factor``,
  memory (``bytes``, ``bytes_per_id``, and the parts ``id_map_bytes``, ``row_bytes``,
  ``admission_bytes``, as :meth:`~recis.core.table.EmbeddingTable.stats` reports them),
  ``bytes/<tier>`` for each storage tier (e.g. ``bytes/ram``), and the running totals of ids
  ``new``, ``admitted``, ``refused`` and ``evicted``.

Evaluation results are written as ``eval/<name>`` at the last training step seen. Needs the
``tensorboard`` package (its own event writer: no framework is needed); view with
``tensorboard --logdir <log_dir>``.

>>> import tempfile
>>> from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
>>> directory = tempfile.mkdtemp()
>>> hook = TensorBoardHook(directory, tables=[])
>>> for step in (1, 2):
...     hook.after_step({"loss": 1.0 / step, "batch_size": 32}, global_step=step)
>>> hook.end()
>>> events = EventAccumulator(directory)
>>> _ = events.Reload()
>>> [(e.step, e.value) for e in events.Scalars("train/loss")]
[(1, 1.0), (2, 0.5)]
"""

from __future__ import annotations

import time

from recis.core.table import live_tables
from recis.framework.metrics import scalar_metrics
from recis.hooks.hook import Hook
from recis.hooks.logger_hook import Throughput
from recis.utils.logger import is_rank_zero

TABLE_STATS = (
    "size",
    "capacity",
    "load_factor",
    "bytes",
    "bytes_per_id",
    "id_map_bytes",
    "row_bytes",
    "admission_bytes",
)
LOOKUP_TOTALS = ("new", "admitted", "refused", "evicted")


class TensorBoardHook(Hook):
    """Write scalars for TensorBoard (see the module docstring).

    Args:
        log_dir: directory of the event files.
        every: steps between writes.
        tables: hash tables to report: torch ``HashTable`` s or engine ``EmbeddingTable`` s
            (default: every live engine table, whatever the front end).
        batch_size: samples per step, when the metrics do not say.
    """

    def __init__(
        self,
        log_dir: str,
        every: int = 1,
        tables: list | None = None,
        batch_size: int | None = None,
    ) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.log_dir = log_dir
        self.every = every
        self._tables = tables
        self.throughput = Throughput(batch_size)
        self._writer = None
        self._last_step = 0

    def tables(self) -> list:
        if self._tables is not None:
            return self._tables
        return sorted(live_tables(), key=lambda table: table.name)

    def before_train(self) -> None:
        self.throughput.start()

    def after_step(self, metrics: dict | None = None, global_step: int = 0) -> None:
        self.throughput.step(metrics)
        self._last_step = global_step
        if global_step % self.every or not is_rank_zero():
            return
        scalars = scalar_metrics(metrics)
        scalars.pop("batch_size", None)
        self._write("train", scalars, global_step)
        steps_rate, samples_rate = self.throughput.interval()
        if samples_rate is None:
            self._write("train", {"steps_per_sec": steps_rate}, global_step)
        else:
            self._write("train", {"samples_per_sec": samples_rate}, global_step)
        for table in self.tables():
            self._write(f"table/{table.name}", table_scalars(table), global_step)

    def after_evaluate(self, metrics: dict | None = None) -> None:
        if is_rank_zero():
            self._write("eval", scalar_metrics(metrics), self._last_step)
            self._writer.flush()

    def after_train(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def end(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _write(self, prefix: str, scalars: dict[str, float], step: int) -> None:
        if self._writer is None:
            self._writer = ScalarWriter(self.log_dir)
        for name, value in scalars.items():
            self._writer.add_scalar(f"{prefix}/{name}", value, step)


class ScalarWriter:
    """Scalar summaries in a TensorBoard event file, through the ``tensorboard`` package alone
    (the format torch's ``SummaryWriter`` writes; no framework needed)."""

    def __init__(self, log_dir: str) -> None:
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self._file = EventFileWriter(log_dir)

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary

        summary = Summary(value=[Summary.Value(tag=tag, simple_value=float(value))])
        self._file.add_event(Event(wall_time=time.time(), step=int(step), summary=summary))

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def table_scalars(table) -> dict[str, float]:
    """Size, capacity, load, memory and lookup totals of one hash table (a torch ``HashTable``
    or an engine ``EmbeddingTable``)."""
    engine_table = getattr(table, "table", table)
    stats = engine_table.stats()
    totals = engine_table.stats_total.as_dict()
    return {
        **{name: float(stats[name]) for name in TABLE_STATS},
        **{f"bytes/{tier}": float(held) for tier, held in stats["tier_bytes"].items()},
        **{name: float(totals[name]) for name in LOOKUP_TOTALS},
    }

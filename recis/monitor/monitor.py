"""Metric clients (RecIS API): named series of points, kept in the process.

A client reports points ``(metric name, value, tags, point type)``; the points of one metric name
and tag set form a series, aggregated by its type until :meth:`Client.take_snapshot` reads it:
a gauge keeps its last value, a sticky gauge too (and survives snapshots), a counter adds its
values, a summary keeps count, sum, minimum and maximum. A series keeps the type it was created
with: a point of another type is refused (``report`` returns False).

>>> client = Factory().get_client("trainer")
>>> client.report("qps", 120.0, {"phase": "train"}, PointType.kGauge)
True
>>> client.report("qps", 80.0, {"phase": "train"}, PointType.kGauge)
True
>>> client.report("qps", 1.0, {"phase": "train"}, PointType.kCounter)
False
>>> client.take_snapshot()
[{'name': 'qps', 'tags': {'phase': 'train'}, 'type': 'gauge', 'value': 80.0, 'count': 2}]
"""

from __future__ import annotations

import abc
import enum
import threading
from dataclasses import dataclass

from recis.utils.logger import Logger

LOG = Logger("recis.monitor")


class PointType(enum.IntEnum):
    """How a series aggregates its points (RecIS's numeric codes)."""

    kGauge = 100
    kGaugeSticky = 110
    kCounter = 200
    kSummary = 300


_TYPE_NAMES = {
    PointType.kGauge: "gauge",
    PointType.kGaugeSticky: "gauge_sticky",
    PointType.kCounter: "counter",
    PointType.kSummary: "summary",
}


@dataclass
class _Series:
    point_type: PointType
    count: int = 0
    total: float = 0.0
    last: float = 0.0
    low: float = float("inf")
    high: float = float("-inf")

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value
        self.last = value
        self.low, self.high = min(self.low, value), max(self.high, value)

    def summary(self) -> dict:
        kind = self.point_type
        if kind == PointType.kCounter:
            return {"value": self.total, "count": self.count}
        if kind == PointType.kSummary:
            stats = {"count": self.count, "sum": self.total, "min": self.low, "max": self.high}
            return {"value": self.last, **stats}
        return {"value": self.last, "count": self.count}


class ClientBase(abc.ABC):
    """What a metric client offers (see the module docstring)."""

    @abc.abstractmethod
    def report(self, name: str, value: float, tags: dict, point_type: PointType) -> bool: ...

    @abc.abstractmethod
    def reset_metric(self, name: str) -> None: ...

    @abc.abstractmethod
    def take_snapshot(self) -> list[dict]: ...


class Client(ClientBase):
    """The series of one client name, kept in memory; safe to use from several threads."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._series: dict[tuple, _Series] = {}
        self._lock = threading.Lock()

    def report(self, name: str, value: float, tags: dict, point_type: PointType) -> bool:
        """Add a point; False (and a warning) when its series has another point type.

        Raises:
            TypeError: a tag key or value is not a string, or ``value`` is not a number.
            ValueError: ``point_type`` is not one of :class:`PointType`.
        """
        key = (name, _frozen_tags(name, tags or {}))
        kind = _point_type(name, point_type)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"metric {name!r}: value must be a number, got {type(value).__name__}")
        with self._lock:
            series = self._series.setdefault(key, _Series(kind))
            if series.point_type != kind:
                LOG.warning(
                    "metric %r %s is a %s series; a %s point is refused",
                    name,
                    dict(key[1]),
                    _TYPE_NAMES[series.point_type],
                    _TYPE_NAMES[kind],
                )
                return False
            series.add(float(value))
        return True

    def reset_metric(self, name: str) -> None:
        """Forget every series of metric ``name``."""
        with self._lock:
            for key in [k for k in self._series if k[0] == name]:
                del self._series[key]

    def take_snapshot(self) -> list[dict]:
        """Each series' aggregate since the last snapshot; series that are not sticky restart."""
        with self._lock:
            items = list(self._series.items())
            self._series = {k: s for k, s in items if s.point_type == PointType.kGaugeSticky}
        return [
            {"name": name, "tags": dict(tags), "type": _TYPE_NAMES[s.point_type], **s.summary()}
            for (name, tags), s in items
        ]


def _frozen_tags(metric: str, tags: dict) -> tuple:
    for key, value in tags.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(
                f"metric {metric!r}: tags must map strings to strings, got {key!r}: {value!r}"
            )
    return tuple(sorted(tags.items()))


def _point_type(metric: str, point_type) -> PointType:
    try:
        return PointType(point_type)
    except ValueError:
        raise ValueError(f"metric {metric!r}: unknown point type {point_type!r}") from None


class Factory:
    """Clients by name: one :class:`Client` per name for the factory's lifetime.

    Args:
        base_log: accepted for RecIS's signature (its factory logs there); unused.
    """

    def __init__(self, base_log: str = "") -> None:
        self.base_log = base_log
        self._clients: dict[str, Client] = {}
        self._lock = threading.Lock()

    def get_client(self, name: str) -> Client:
        with self._lock:
            return self._clients.setdefault(name, Client(name))


_FACTORY = Factory()


def GetFactory() -> Factory:
    """The process-wide factory."""
    return _FACTORY

"""recis.monitor.monitor: series keyed by name and tags, aggregated by their point type."""

from __future__ import annotations

import pytest

from recis.monitor.monitor import Factory, GetFactory, PointType


def test_each_point_type_aggregates_its_series():
    client = Factory().get_client("job")
    for value in (3.0, 1.0, 2.0):
        assert client.report("loss", value, {"phase": "train"}, PointType.kGauge)
        assert client.report("samples", value, {}, PointType.kCounter)
        assert client.report("latency", value, {}, PointType.kSummary)
    assert client.report("loss", 9.0, {"phase": "eval"}, PointType.kGauge)  # another series
    snapshot = {(s["name"], tuple(s["tags"].items())): s for s in client.take_snapshot()}
    assert snapshot[("loss", (("phase", "train"),))]["value"] == 2.0
    assert snapshot[("loss", (("phase", "eval"),))]["value"] == 9.0
    assert snapshot[("samples", ())]["value"] == 6.0
    latency = snapshot[("latency", ())]
    assert (latency["count"], latency["sum"], latency["min"], latency["max"]) == (3, 6.0, 1.0, 3.0)
    assert client.take_snapshot() == []  # a snapshot restarts the series


def test_a_sticky_gauge_survives_snapshots_and_reset_forgets_a_metric():
    client = Factory().get_client("job")
    client.report("ids", 7, {"table": "user"}, PointType.kGaugeSticky)
    client.report("qps", 7, {}, PointType.kGauge)
    client.take_snapshot()
    assert [(s["name"], s["value"]) for s in client.take_snapshot()] == [("ids", 7.0)]
    client.reset_metric("ids")
    assert client.take_snapshot() == []


def test_a_series_keeps_its_point_type():
    client = Factory().get_client("job")
    assert client.report("m", 1.0, {"a": "1"}, PointType.kGauge)
    assert not client.report("m", 2.0, {"a": "1"}, PointType.kSummary)
    assert client.report("m", 2.0, {"a": "2"}, PointType.kSummary)  # other tags: other series
    assert [s["value"] for s in client.take_snapshot() if s["tags"] == {"a": "1"}] == [1.0]


def test_bad_points_name_the_metric():
    client = Factory().get_client("job")
    with pytest.raises(TypeError, match="metric 'm': tags must map strings to strings"):
        client.report("m", 1.0, {"epoch": 0}, PointType.kGauge)
    with pytest.raises(ValueError, match="metric 'm': unknown point type 7"):
        client.report("m", 1.0, {}, 7)
    with pytest.raises(TypeError, match="metric 'm': value must be a number"):
        client.report("m", "1", {}, PointType.kGauge)


def test_the_process_factory_gives_one_client_per_name():
    assert GetFactory() is GetFactory()
    assert GetFactory().get_client("a") is GetFactory().get_client("a")
    assert GetFactory().get_client("a") is not GetFactory().get_client("b")

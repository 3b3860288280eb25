"""`pilothouse.metrics.Metrics`: one typed accessor per metric type, only for catalog specs."""

from __future__ import annotations

import pytest
from prometheus_client import Counter, Gauge, Histogram, Info

from pilothouse.catalog import http_server as http_metrics
from pilothouse.catalog import lifecycle as lifecycle_metrics
from pilothouse.catalog.spec import MetricSpec
from pilothouse.metrics import Metrics


def test_each_accessor_returns_its_type_once() -> None:
    metrics = Metrics()
    runs = metrics.counter(lifecycle_metrics.READINESS_CHECK_RUNS)
    assert isinstance(runs, Counter) and metrics.counter(lifecycle_metrics.READINESS_CHECK_RUNS) is runs
    assert isinstance(metrics.gauge(lifecycle_metrics.LIFECYCLE_STATE), Gauge)
    assert isinstance(metrics.histogram(http_metrics.HTTP_SERVER_REQUEST_DURATION), Histogram)
    assert isinstance(metrics.info(lifecycle_metrics.BUILD_INFO), Info)


def test_a_spec_of_another_type_is_refused() -> None:
    """Asking for a gauge as a counter is an error naming both, not an object without `.inc`."""
    with pytest.raises(TypeError, match=r"pilothouse_lifecycle_state is a gauge, not a counter"):
        Metrics().counter(lifecycle_metrics.LIFECYCLE_STATE)


def test_an_undeclared_metric_is_refused() -> None:
    stray = MetricSpec(name="stray_total_things", type="counter", help="not in the catalog")
    with pytest.raises(KeyError, match=r"not declared in pilothouse\.catalog"):
        Metrics().counter(stray)

"""Where the request middleware's metrics live: in-process storage read when scraped (one
worker), or prometheus_client's multiprocess files (several workers, summed by the scrape).
The middleware asks for a series here and never checks the mode itself."""

from __future__ import annotations

from typing import Any

from pilothouse.catalog import MetricSpec
from pilothouse.catalog import http as http_metrics
from pilothouse.runtime.metrics import Metrics
from pilothouse.runtime.multiprocess import multiprocess_enabled
from pilothouse.telemetry.request_histogram import ChildSeries, RequestHistogram


class InProgress:
    """Requests in progress for one method as a plain int, read when scraped: a Gauge's
    inc/dec each take a lock and two checks, twice per request."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def inc(self) -> None:
        self.value += 1

    def dec(self) -> None:
        self.value -= 1

    def get(self) -> float:
        return self.value


class MultiprocessHistogram:
    """A request histogram in prometheus_client's multiprocess storage, giving the same
    series interface as `RequestHistogram`."""

    __slots__ = ("histogram",)

    def __init__(self, histogram: Any) -> None:
        self.histogram = histogram

    def labels(self, *values: str) -> ChildSeries:
        return ChildSeries(self.histogram.labels(*values))


def request_histogram(metrics: Metrics, spec: MetricSpec) -> RequestHistogram | MultiprocessHistogram:
    """A per-request histogram (duration, body sizes): in `RequestHistogram` storage, or
    (several workers) as a prometheus_client `Histogram` writing the shared files."""
    if multiprocess_enabled():
        return MultiprocessHistogram(metrics.get(spec))
    histogram: RequestHistogram = metrics.get(spec, storage=RequestHistogram)
    return histogram


def active_requests(metrics: Metrics) -> dict[str, Any]:
    """`http_server_active_requests` per method: gauge children in multiprocess storage (each
    worker writes its value for the supervisor's sum), ints read at scrape time otherwise."""
    gauge = metrics.get(http_metrics.HTTP_SERVER_ACTIVE_REQUESTS)
    methods = (*http_metrics.STANDARD_METHODS, http_metrics.OTHER_METHOD)
    if multiprocess_enabled():
        return {method: gauge.labels(method) for method in methods}
    active: dict[str, Any] = {}
    for method in methods:
        counter = active[method] = InProgress()
        gauge.labels(method).set_function(counter.get)
    return active

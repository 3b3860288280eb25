"""Where the request middleware's metrics live: in-process storage read when scraped (one
worker), or prometheus_client's multiprocess files (several workers, summed by the scrape).
The middleware asks for a series here and never checks the mode itself."""

from __future__ import annotations

from typing import Any

from pilothouse.catalog import MetricSpec
from pilothouse.catalog import http_server as http_metrics
from pilothouse.metrics import Metrics
from pilothouse.runtime.multiprocess import multiprocess_enabled
from pilothouse.telemetry.request_histogram import ChildSeries, RequestHistogram


class InProgress:
    """Requests in progress for one method as a plain int the middleware adds to
    (`count.value += 1`: no call), read when scraped: a Gauge's inc/dec each take a lock and
    two checks, twice per request."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def get(self) -> float:
        return self.value


class SharedInProgress:
    """The same `value` over a Gauge child in prometheus_client's multiprocess storage: each
    worker writes its own count (the supervisor's scrape sums them), so setting it is what
    inc/dec did."""

    __slots__ = ("_child", "_value")

    def __init__(self, child: Any) -> None:
        self._child = child
        self._value = 0

    @property
    def value(self) -> int:
        return self._value

    @value.setter
    def value(self, value: int) -> None:
        self._value = value
        self._child.set(value)


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
        return MultiprocessHistogram(metrics.histogram(spec))
    histogram: RequestHistogram = metrics.custom(spec, RequestHistogram)
    return histogram


def active_requests(metrics: Metrics) -> dict[str, InProgress | SharedInProgress]:
    """`http_server_active_requests` per method, as counts with a `value` the middleware adds
    to: gauge children in multiprocess storage (each worker writes its value for the
    supervisor's sum), ints read at scrape time otherwise."""
    gauge = metrics.gauge(http_metrics.HTTP_SERVER_ACTIVE_REQUESTS)
    methods = (*http_metrics.STANDARD_METHODS, http_metrics.OTHER_METHOD)
    if multiprocess_enabled():
        return {method: SharedInProgress(gauge.labels(method)) for method in methods}
    active: dict[str, InProgress | SharedInProgress] = {}
    for method in methods:
        counter = active[method] = InProgress()
        gauge.labels(method).set_function(counter.get)
    return active

"""Storage of the request-duration histogram: one observation per request, made cheap.

prometheus_client's `Histogram.observe` takes two locks (sum, bucket) and walks the buckets in
a Python loop: about 0.65 µs, the largest single cost of "metrics only" (measured in
docs/performance.md). In single-process storage the middleware observes into `Series`
instead (a C `bisect`, a list increment and a float add under one lock, ~0.25 µs), and
`RequestHistogram`, a prometheus_client custom collector, turns the counts into the same
samples a `Histogram` exposes when `/metrics` is scraped (`_bucket` cumulative with `le`
labels, `_count`, `_sum`, `_created`, exemplars). Registry, exposition formats and content
negotiation stay prometheus_client's. In multiprocess storage the counts must live in
prometheus_client's shared files, so `ChildSeries` keeps its `Histogram` child there.

Each bucket of a series takes at most one new exemplar per `EXEMPLAR_INTERVAL`.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client import metrics as prometheus_metrics
from prometheus_client.metrics_core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Exemplar, Sample
from prometheus_client.utils import floatToGoString

from pilothouse.catalog import MetricSpec

EXEMPLAR_INTERVAL = 0.1
"""Seconds: each bucket of a series takes at most one new exemplar per interval. Prometheus keeps
only a bucket's latest exemplar per scrape anyway, and attaching one costs more than the
observation itself."""

_INF = float("inf")


class Series:
    """The counts of one label combination: per bucket (not cumulative), sum, exemplars."""

    __slots__ = ("_bounds", "_lock", "counts", "created", "exemplars", "next_exemplar", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds
        self._lock = threading.Lock()  # the request path has one writer; scrapes read
        self.counts = [0] * len(bounds)
        self.sum = 0.0
        self.created = time.time()
        self.exemplars: list[Exemplar | None] = [None] * len(bounds)
        self.next_exemplar = [0.0] * len(bounds)

    def observe(self, duration: float) -> None:
        bucket = bisect_left(self._bounds, duration)  # the first bound >= duration, as prometheus
        with self._lock:
            self.counts[bucket] += 1
            self.sum += duration

    def observe_traced(self, duration: float, trace_hex: str, now: float) -> None:
        """Observe, with the trace id as the bucket's exemplar when its interval has passed
        (`now`: `time.perf_counter()`, which the caller has just read)."""
        bucket = bisect_left(self._bounds, duration)
        with self._lock:
            self.counts[bucket] += 1
            self.sum += duration
            if now >= self.next_exemplar[bucket]:
                self.next_exemplar[bucket] = now + EXEMPLAR_INTERVAL
                self.exemplars[bucket] = Exemplar({"trace_id": trace_hex}, duration, time.time())

    def snapshot(self) -> tuple[list[int], float, list[Exemplar | None]]:
        with self._lock:
            return list(self.counts), self.sum, list(self.exemplars)


class ChildSeries:
    """The same interface over a prometheus_client `Histogram` child (multiprocess storage,
    where exemplars do not exist)."""

    __slots__ = ("child",)

    def __init__(self, child: Any) -> None:
        self.child = child

    def observe(self, duration: float) -> None:
        self.child.observe(duration)

    def observe_traced(self, duration: float, trace_hex: str, now: float) -> None:
        self.child.observe(duration)


class RequestHistogram(Collector):
    """A histogram family from a catalog spec, stored in `Series`, collected like a
    prometheus_client `Histogram` (see the module docstring)."""

    def __init__(self, spec: MetricSpec) -> None:
        if spec.type != "histogram" or not spec.buckets:
            raise ValueError(f"{spec.name}: not a histogram with buckets")
        self._spec = spec
        self._bounds = (*spec.buckets, _INF) if spec.buckets[-1] != _INF else tuple(spec.buckets)
        self._le = tuple(floatToGoString(bound) for bound in self._bounds)  # type: ignore[no-untyped-call]
        self._series: dict[tuple[str, ...], Series] = {}
        self._lock = threading.Lock()

    def labels(self, *values: str) -> Series:
        """The series for these label values (in the spec's label order), created once."""
        if len(values) != len(self._spec.labels):
            raise ValueError(f"{self._spec.name}: expected labels {self._spec.labels}, got {values}")
        series = self._series.get(values)
        if series is None:
            with self._lock:
                series = self._series.setdefault(values, Series(self._bounds))
        return series

    def describe(self) -> Sequence[Metric]:
        return [HistogramMetricFamily(self._spec.name, self._spec.help, labels=self._spec.labels)]

    def collect(self) -> Iterator[Metric]:
        spec = self._spec
        family = HistogramMetricFamily(spec.name, spec.help, labels=spec.labels)
        with self._lock:
            series = list(self._series.items())
        # prometheus_client's own switch (PROMETHEUS_DISABLE_CREATED_SERIES, disable_created_metrics)
        with_created = getattr(prometheus_metrics, "_use_created", True)
        for values, one in series:
            counts, total, exemplars = one.snapshot()
            buckets: list[Any] = []
            cumulative = 0
            for le, count, exemplar in zip(self._le, counts, exemplars, strict=True):
                cumulative += count
                buckets.append((le, cumulative, exemplar) if exemplar is not None else (le, cumulative))
            family.add_metric(values, buckets, total)
            if with_created:
                labels = dict(zip(spec.labels, values, strict=True))
                family.samples.append(Sample(f"{spec.name}_created", labels, one.created))
        yield family

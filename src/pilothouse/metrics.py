"""Register prometheus_client collectors from the catalog, never from string literals."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.registry import Collector

from pilothouse.catalog import MetricSpec, MetricType, all_specs

T = TypeVar("T")
C = TypeVar("C", bound=Collector)


def make_collector(spec: MetricSpec, registry: CollectorRegistry, **extra: Any) -> Any:
    """A prometheus_client metric object for `spec`, registered in `registry`."""
    kwargs: dict[str, Any] = {"labelnames": spec.labels, "registry": registry, **extra}
    if spec.type == "counter":
        return Counter(spec.name, spec.help, **kwargs)
    if spec.type == "gauge":
        return Gauge(spec.name, spec.help, multiprocess_mode=spec.multiprocess_mode, **kwargs)
    if spec.type == "histogram":
        return Histogram(spec.name, spec.help, buckets=spec.buckets, **kwargs)
    # An Info's labels are the keys of the dict passed to .info(), not label names.
    return Info(spec.name, spec.help, registry=registry)


class Metrics:
    """All collectors of one process, by family name, in one registry.

    One accessor per metric type (`counter`, `gauge`, `histogram`, `info`, and `custom` for a
    collector of Pilothouse's own), each typed and refusing a spec of another type."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._collectors: dict[str, object] = {}
        self._storage: dict[str, Callable[[MetricSpec], Collector] | None] = {}

    def counter(self, spec: MetricSpec) -> Counter:
        return self._typed(spec, "counter", Counter)

    def gauge(self, spec: MetricSpec) -> Gauge:
        return self._typed(spec, "gauge", Gauge)

    def histogram(self, spec: MetricSpec) -> Histogram:
        return self._typed(spec, "histogram", Histogram)

    def info(self, spec: MetricSpec) -> Info:
        return self._typed(spec, "info", Info)

    def custom(self, spec: MetricSpec, storage: Callable[[MetricSpec], C]) -> C:
        """`storage(spec)` (a custom collector, registered here), created on first use."""
        return cast("C", self._collector(spec, storage))  # what storage(spec) made

    def _typed(self, spec: MetricSpec, kind: MetricType, cls: type[T]) -> T:
        if spec.type != kind:
            raise TypeError(f"metric {spec.name} is a {spec.type}, not a {kind}")
        collector = self._collector(spec, None)
        assert isinstance(collector, cls)
        return collector

    def _collector(self, spec: MetricSpec, storage: Callable[[MetricSpec], Collector] | None) -> object:
        """The collector for `spec`, created on first use: a prometheus_client metric, or
        `storage(spec)` when given."""
        collector = self._collectors.get(spec.name)
        if collector is None:
            if spec not in all_specs():
                raise KeyError(f"metric {spec.name} is not declared in pilothouse.catalog")
            if storage is None:
                collector = make_collector(spec, self.registry)
            else:
                collector = storage(spec)
                self.registry.register(collector)
            self._collectors[spec.name] = collector
            self._storage[spec.name] = storage
        elif self._storage[spec.name] is not storage:
            # Callers of one family must agree on its storage: the objects differ in interface.
            raise ValueError(f"metric {spec.name} is already registered with another storage")
        return collector

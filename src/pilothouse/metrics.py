"""Register prometheus_client collectors from the catalog, never from string literals."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from pilothouse.catalog import MetricSpec, all_specs


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
    """All collectors of one process, by family name, in one registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._collectors: dict[str, Any] = {}
        self._storage: dict[str, Callable[[MetricSpec], Any] | None] = {}

    def get(self, spec: MetricSpec, storage: Callable[[MetricSpec], Any] | None = None) -> Any:
        """The collector for `spec`, created on first use: a prometheus_client metric, or
        `storage(spec)` (a custom collector, registered here) when given."""
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

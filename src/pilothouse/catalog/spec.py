"""How a metric is declared: once, with everything exposition and PromQL generators need."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

MetricType = Literal["counter", "gauge", "histogram", "info"]
GaugeAggregation = Literal["all", "liveall", "livesum", "max", "min", "sum", "mostrecent"]

DEFAULT_LATENCY_BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
)


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One metric family. `name` is the Prometheus family name (no `_total` suffix for
    counters: prometheus_client adds it); `series()` gives the names a scrape really shows."""

    name: str
    type: MetricType
    help: str
    labels: tuple[str, ...] = ()
    unit: str = ""
    buckets: tuple[float, ...] = field(default=())
    # How a gauge's per-process values combine when several worker processes share one
    # scrape (prometheus_client multiprocess mode); "all" keeps one series per pid.
    multiprocess_mode: GaugeAggregation = "all"

    def series(self) -> tuple[str, ...]:
        """Sample names as exposed in the Prometheus text format."""
        if self.type == "counter":
            return (f"{self.name}_total",)
        if self.type == "histogram":
            return tuple(f"{self.name}_{s}" for s in ("bucket", "count", "sum"))
        if self.type == "info":
            return (f"{self.name}_info",)
        return (self.name,)

    @property
    def sample_name(self) -> str:
        """The main series name used in PromQL (counters with `_total`)."""
        return self.series()[0] if self.type in ("counter", "info") else self.name

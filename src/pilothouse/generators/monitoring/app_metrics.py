"""The application metrics a service declares: the catalog specs of the `pilothouse.telemetry`
helpers it lists in `[monitoring].helpers`, and its own metrics from `[[monitoring.metrics]]`.

Panels and alerts are generated for these and nothing else, so no panel stays empty and no alert
watches a series the service never emits. One default query per metric type serves both.
"""

from __future__ import annotations

from pilothouse.catalog import MetricSpec
from pilothouse.catalog import app as app_catalog
from pilothouse.catalog.spec import DEFAULT_LATENCY_BUCKETS
from pilothouse.config.model import Config
from pilothouse.config.monitoring import AppMetric
from pilothouse.generators.monitoring.promql import Matcher, quantile, scraped_label, selector

UNITS = {"seconds": "s", "bytes": "bytes", "ratio": "percentunit"}


def spec_of(metric: AppMetric) -> MetricSpec:
    """A configured app metric as a spec, so its PromQL is checked like the catalog's."""
    return MetricSpec(
        name=metric.family,
        type=metric.type,
        help=metric.help or f"{metric.name} (declared by the app)",
        labels=tuple(metric.labels),
        unit=metric.unit,
        buckets=DEFAULT_LATENCY_BUCKETS if metric.type == "histogram" else (),
    )


def helper_specs(config: Config) -> tuple[MetricSpec, ...]:
    declared = set(config.monitoring.helpers)
    return tuple(s for helper, specs in app_catalog.HELPERS.items() if helper in declared for s in specs)


def declared_specs(config: Config) -> tuple[MetricSpec, ...]:
    """Every application metric the service says it emits, helpers first."""
    return (*helper_specs(config), *(spec_of(m) for m in config.monitoring.metrics))


def uses(config: Config, helper: str) -> bool:
    return helper in config.monitoring.helpers


def panel_query(spec: MetricSpec, m: tuple[Matcher, ...], rate_window: str) -> tuple[str, str, str]:
    """The default query of a metric by type: (expr, legend, unit). Counters per second,
    histograms at p99 over 5m, gauges at their max; grouped by every declared label."""
    labels = tuple(scraped_label(spec, label) for label in spec.labels)
    legend = " ".join(f"{{{{{label}}}}}" for label in labels) or spec.name
    unit = UNITS.get(spec.unit, "short")
    group = f"by ({', '.join(labels)}) " if labels else ""
    if spec.type == "counter":
        return f"sum {group}(rate({selector(spec, *m)}[{rate_window}]))", legend, "ops"
    if spec.type == "histogram":
        first = labels[:1]
        return quantile(0.99, spec, m, 300, first), " ".join(f"{{{{{g}}}}}" for g in first) + " p99", unit
    return f"max {group}({selector(spec, *m)})", legend, unit

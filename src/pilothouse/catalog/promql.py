"""PromQL built from catalog declarations: a metric name is never typed here, only a `MetricSpec`.
It sits at the catalog level so that both the generators and the jobs (the operations report)
build their queries here.

A selector may only match labels its spec declares or that Prometheus attaches to every target
(`job`, `instance`, `namespace`); anything else raises at generation time, so a typo in a label
can never reach a dashboard or an alert. A declared label that collides with a target label (the
jobs catalog's `job`) is stored by Prometheus as `exported_<label>` (honor_labels is false by
default); `scraped_label` does that renaming in one place.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client.utils import floatToGoString

from pilothouse.catalog.spec import MetricSpec
from pilothouse.durations import format_duration

TARGET_LABELS = ("job", "instance", "namespace")
"""Labels Prometheus (or its Kubernetes service discovery) attaches to every scraped series."""

SCRAPE_UP = MetricSpec(
    name="up",
    type="gauge",
    help="Written by Prometheus for every target: 1 when the last scrape succeeded, else 0.",
)
"""The one series the service never emits: Prometheus synthesises it per target."""


def scraped_label(spec: MetricSpec, label: str) -> str:
    """The name a declared label has once scraped (`job` becomes `exported_job`)."""
    if label not in spec.labels:
        raise ValueError(f"{spec.name} has no label '{label}' (declared: {', '.join(spec.labels) or 'none'})")
    return f"exported_{label}" if label in TARGET_LABELS else label


def series_labels(spec: MetricSpec) -> tuple[str, ...]:
    """Every label a scraped sample of `spec` may carry (histogram buckets add `le`)."""
    declared = tuple(scraped_label(spec, label) for label in spec.labels)
    return (*TARGET_LABELS, *declared, *(("le",) if spec.type == "histogram" else ()))


@dataclass(frozen=True, slots=True)
class Matcher:
    """One label matcher; `op` is one of = != =~ !~."""

    label: str
    value: str
    op: str = "="

    def render(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.label}{self.op}"{escaped}"'


def selector(spec: MetricSpec, *matchers: Matcher, part: str | None = None) -> str:
    """`name{matchers}` for a spec; `part` picks a histogram series ("bucket", "count", "sum")."""
    if part is None:
        name = spec.sample_name
    else:
        if spec.type != "histogram" or part not in ("bucket", "count", "sum"):
            raise ValueError(f"{spec.name}: no '{part}' series for a {spec.type}")
        name = f"{spec.name}_{part}"
    allowed = (*TARGET_LABELS, *spec.labels, *(scraped_label(spec, lb) for lb in spec.labels))
    if part == "bucket":
        allowed = (*allowed, "le")
    for matcher in matchers:
        if matcher.label not in allowed:
            raise ValueError(f"{spec.name}: label '{matcher.label}' is not declared in the catalog")
    if not matchers:
        return name
    return f"{name}{{{','.join(m.render() for m in matchers)}}}"


def window(seconds: float) -> str:
    """A range for PromQL: `[5m]`."""
    return f"[{format_duration(seconds)}]"


def by(labels: Iterable[str]) -> str:
    """`by (a, b) ` for an aggregation; nothing for a total."""
    names = tuple(labels)
    return f"by ({', '.join(names)}) " if names else ""


def rate_sum(
    spec: MetricSpec,
    matchers: tuple[Matcher, ...],
    seconds: float,
    group: Iterable[str],
    part: str | None = None,
    func: str = "rate",
) -> str:
    """`sum by (group) (rate(selector[w]))`: the shape of nearly every counter panel and rule."""
    return f"sum {by(group)}({func}({selector(spec, *matchers, part=part)}{window(seconds)}))"


def quantile(
    q: float, spec: MetricSpec, matchers: tuple[Matcher, ...], seconds: float, group: Iterable[str]
) -> str:
    """`histogram_quantile` over a catalog histogram, grouped by `group` plus `le`."""
    return f"histogram_quantile({q}, {rate_sum(spec, matchers, seconds, (*group, 'le'), part='bucket')})"


def bucket_le(spec: MetricSpec, seconds: float) -> str:
    """The `le` label value of a declared bucket bound, formatted as the client library writes it.

    Raises ValueError when `seconds` is not a bucket bound: a latency SLO on a bound the
    histogram does not have cannot be computed exactly.
    """
    if seconds not in spec.buckets:
        bounds = ", ".join(format_duration(b) for b in spec.buckets)
        raise ValueError(f"{format_duration(seconds)} is not a bucket bound of {spec.name} ({bounds})")
    text: str = floatToGoString(seconds)  # type: ignore[no-untyped-call]
    return text

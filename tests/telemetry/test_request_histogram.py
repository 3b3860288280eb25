"""`RequestHistogram` exposes exactly what a prometheus_client `Histogram` would."""

from __future__ import annotations

import random
import time

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics

from pilothouse.catalog import http_server as http_metrics
from pilothouse.metrics import Metrics
from pilothouse.telemetry.request_histogram import RequestHistogram

SPEC = http_metrics.HTTP_SERVER_REQUEST_DURATION
LABELS = [("GET", "/items/{id}", "200"), ("POST", "/items", "201"), ("GET", "__unmatched__", "404")]


def _without_created(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if "_created" not in line)


@pytest.mark.parametrize("exposition", [generate_latest, openmetrics])
def test_same_exposition_as_prometheus_client(exposition: object) -> None:
    reference_registry, ours_registry = CollectorRegistry(), CollectorRegistry()
    reference = Histogram(
        SPEC.name, SPEC.help, SPEC.labels, registry=reference_registry, buckets=SPEC.buckets
    )
    ours = RequestHistogram(SPEC)
    ours_registry.register(ours)
    rng = random.Random(7)
    bounds = [*SPEC.buckets]
    for _ in range(2000):
        labels = rng.choice(LABELS)
        # bucket edges exactly, values between them, and beyond the last bound
        duration = rng.choice([rng.choice(bounds), rng.uniform(0, 12), rng.expovariate(40)])
        reference.labels(*labels).observe(duration)
        ours.labels(*labels).observe(duration)
    render = exposition  # type: ignore[assignment]
    expected = render(reference_registry).decode()  # type: ignore[operator]
    actual = render(ours_registry).decode()  # type: ignore[operator]
    assert _without_created(actual) == _without_created(expected)
    # _created is there too, one per series, with the same label sets
    created = sorted(line.split(" ")[0] for line in actual.splitlines() if "_created{" in line)
    assert created == sorted(line.split(" ")[0] for line in expected.splitlines() if "_created{" in line)
    assert len(created) == len(LABELS)


def test_exemplar_is_exposed_on_its_bucket() -> None:
    registry = CollectorRegistry()
    histogram = RequestHistogram(SPEC)
    registry.register(histogram)
    histogram.labels("GET", "/", "200").observe_traced(0.003, "a" * 32, time.perf_counter())
    text = openmetrics(registry).decode()  # type: ignore[no-untyped-call]
    bucket = next(line for line in text.splitlines() if 'le="0.005"' in line)
    assert '# {trace_id="' + "a" * 32 + '"} 0.003' in bucket


def test_declared_once_in_the_registry() -> None:
    metrics = Metrics()
    first = metrics.custom(SPEC, RequestHistogram)
    assert metrics.custom(SPEC, RequestHistogram) is first
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        Histogram(SPEC.name, SPEC.help, SPEC.labels, registry=metrics.registry)


def test_callers_of_one_family_must_agree_on_its_storage() -> None:
    """A prometheus_client Histogram and a RequestHistogram differ in interface: asking for the
    other storage is an error, not a silent wrong object (either order)."""
    first_plain = Metrics()
    first_plain.histogram(SPEC)
    with pytest.raises(ValueError, match="another storage"):
        first_plain.custom(SPEC, RequestHistogram)
    first_custom = Metrics()
    first_custom.custom(SPEC, RequestHistogram)
    with pytest.raises(ValueError, match="another storage"):
        first_custom.histogram(SPEC)


def test_wrong_label_count_is_refused() -> None:
    with pytest.raises(ValueError, match="expected labels"):
        RequestHistogram(SPEC).labels("GET")

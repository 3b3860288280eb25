"""The PromQL builders refuse what the catalog does not declare, at generation time."""

from __future__ import annotations

import pytest

from pilothouse.catalog import http_server as http_metrics
from pilothouse.catalog import jobs as job_metrics
from pilothouse.generators.monitoring.promql import (
    Matcher,
    bucket_le,
    quantile,
    rate_sum,
    scraped_label,
    selector,
)

HTTP = http_metrics.HTTP_SERVER_REQUEST_DURATION


def test_selectors_use_catalog_names_and_escape_values() -> None:
    assert selector(http_metrics.HTTP_SERVER_REQUESTS_DROPPED) == "pilothouse_http_requests_dropped_total"
    assert (
        selector(HTTP, Matcher("http_route", 'a"b'), part="count")
        == 'http_server_request_duration_seconds_count{http_route="a\\"b"}'
    )


def test_undeclared_label_or_series_part_is_refused() -> None:
    with pytest.raises(ValueError, match="label 'route' is not declared"):
        selector(HTTP, Matcher("route", "/items"))
    with pytest.raises(ValueError, match="no 'bucket' series for a gauge"):
        selector(http_metrics.HTTP_SERVER_ACTIVE_REQUESTS, part="bucket")


def test_target_label_collision_is_renamed_as_prometheus_does() -> None:
    assert scraped_label(job_metrics.JOB_RUNS, "job") == "exported_job"
    assert scraped_label(job_metrics.JOB_RUNS, "outcome") == "outcome"
    with pytest.raises(ValueError):
        scraped_label(job_metrics.JOB_RUNS, "step")


def test_aggregations_and_bucket_bounds() -> None:
    assert (
        rate_sum(HTTP, (), 300, (), part="count")
        == "sum (rate(http_server_request_duration_seconds_count[5m]))"
    )
    assert quantile(0.99, HTTP, (Matcher("job", "shop"),), 3600, ("http_route",)) == (
        "histogram_quantile(0.99, sum by (http_route, le) "
        '(rate(http_server_request_duration_seconds_bucket{job="shop"}[1h])))'
    )
    assert bucket_le(HTTP, 1.0) == "1.0"
    with pytest.raises(ValueError, match="300ms is not a bucket bound"):
        bucket_le(HTTP, 0.3)

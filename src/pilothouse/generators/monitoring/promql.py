"""The PromQL builder lives in `pilothouse.catalog.promql`, below the features, so the operations
report (`pilothouse.report`) builds its SLO queries with the same functions as the rules and
dashboards; re-exported here for the generators."""

from pilothouse.catalog.promql import (
    SCRAPE_UP,
    TARGET_LABELS,
    Matcher,
    bucket_le,
    by,
    quantile,
    rate_sum,
    scraped_label,
    selector,
    series_labels,
    window,
)

__all__ = [
    "SCRAPE_UP",
    "TARGET_LABELS",
    "Matcher",
    "bucket_le",
    "by",
    "quantile",
    "rate_sum",
    "scraped_label",
    "selector",
    "series_labels",
    "window",
]

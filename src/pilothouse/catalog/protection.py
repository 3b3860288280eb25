"""Metrics of the app port's protection (`[protection]`): what was refused and why, and the
unhandled exceptions turned into safe error bodies. Labels are bounded enums."""

from pilothouse.catalog.spec import MetricSpec

REFUSAL_REASONS = (
    "body_too_large",
    "headers_too_large",
    "too_many_headers",
    "time_limit",
    "rate_limited",
    "rate_limit_unavailable",
    "unauthenticated",
    "invalid_credentials",
    "insufficient_scope",
)
"""Every value of the `reason` label, declared so dashboards and tests share one list."""

HTTP_REQUESTS_REFUSED = MetricSpec(
    name="pilothouse_http_requests_refused",
    type="counter",
    help="Requests the protection layer answered itself instead of the app, by reason.",
    labels=("reason",),
    unit="requests",
)
HTTP_UNHANDLED_ERRORS = MetricSpec(
    name="pilothouse_http_unhandled_errors",
    type="counter",
    help=(
        "Unhandled exceptions raised by the app; `response` is 'problem' when a problem+json 500 "
        "replaced them, 'started' when the response had already begun (nothing to rewrite)."
    ),
    labels=("response",),
    unit="errors",
)

RATE_LIMIT_BACKEND_UP = MetricSpec(
    name="pilothouse_rate_limit_backend_up",
    type="gauge",
    help="1 while the rate limit's shared store (Redis) answered its last call, 0 while it fails.",
    labels=("limit",),
    multiprocess_mode="min",
)

SPECS = (HTTP_REQUESTS_REFUSED, HTTP_UNHANDLED_ERRORS, RATE_LIMIT_BACKEND_UP)

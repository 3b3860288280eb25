"""HTTP server metrics, named as OpenTelemetry semantic conventions export to Prometheus."""

from pilothouse.catalog.spec import DEFAULT_LATENCY_BUCKETS, MetricSpec

HTTP_SERVER_REQUEST_DURATION = MetricSpec(
    name="http_server_request_duration_seconds",
    type="histogram",
    help="Duration of HTTP server requests.",
    labels=("http_request_method", "http_route", "http_response_status_code"),
    unit="seconds",
    buckets=DEFAULT_LATENCY_BUCKETS,
)
HTTP_SERVER_ACTIVE_REQUESTS = MetricSpec(
    name="http_server_active_requests",
    type="gauge",
    help="Number of active HTTP server requests.",
    labels=("http_request_method",),
)
HTTP_SERVER_REQUESTS_DROPPED = MetricSpec(
    name="pilothouse_http_requests_dropped",
    type="counter",
    help="Requests still in flight when the drain timeout ran out, cancelled at shutdown.",
)

SPECS = (HTTP_SERVER_REQUEST_DURATION, HTTP_SERVER_ACTIVE_REQUESTS, HTTP_SERVER_REQUESTS_DROPPED)

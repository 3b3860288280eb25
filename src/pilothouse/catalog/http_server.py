"""HTTP server metrics, named as OpenTelemetry semantic conventions export to Prometheus.

Label values are bounded: `http_route` is the route template (`/items/{id}`) or UNMATCHED_ROUTE,
`http_request_method` is one of STANDARD_METHODS or OTHER_METHOD.
"""

from pilothouse.catalog.spec import DEFAULT_LATENCY_BUCKETS, MetricSpec

STANDARD_METHODS = frozenset(
    ("CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE", "QUERY")
)
OTHER_METHOD = "_OTHER"
UNMATCHED_ROUTE = "_unmatched"
"""The one `http_route` value shared by every request no route template matched (404s, scans)."""

REQUEST_LABELS = ("http_request_method", "http_route", "http_response_status_code")
"""The labels of every per-request histogram (duration, body sizes), in this order."""

HTTP_SERVER_REQUEST_DURATION = MetricSpec(
    name="http_server_request_duration_seconds",
    type="histogram",
    help="Duration of HTTP server requests, from the first ASGI call to the end of the response.",
    labels=REQUEST_LABELS,
    unit="seconds",
    buckets=DEFAULT_LATENCY_BUCKETS,
)
BODY_SIZE_BUCKETS: tuple[float, ...] = (0, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216)
"""Bytes: empty, then powers of four from 256 B to 16 MiB."""
HTTP_SERVER_REQUEST_BODY_SIZE = MetricSpec(
    name="http_server_request_body_size_bytes",
    type="histogram",
    help="Size of HTTP server request bodies as the app read them (`[telemetry].body_size_metrics`).",
    labels=REQUEST_LABELS,
    unit="bytes",
    buckets=BODY_SIZE_BUCKETS,
)
HTTP_SERVER_RESPONSE_BODY_SIZE = MetricSpec(
    name="http_server_response_body_size_bytes",
    type="histogram",
    help="Size of HTTP server response bodies as the app sent them (`[telemetry].body_size_metrics`).",
    labels=REQUEST_LABELS,
    unit="bytes",
    buckets=BODY_SIZE_BUCKETS,
)
HTTP_SERVER_ACTIVE_REQUESTS = MetricSpec(
    name="http_server_active_requests",
    type="gauge",
    help="Number of HTTP server requests in progress.",
    labels=("http_request_method",),
    unit="requests",
    multiprocess_mode="livesum",
)
HTTP_SERVER_REQUESTS_DROPPED = MetricSpec(
    name="pilothouse_http_requests_dropped",
    type="counter",
    help="Requests still in flight when the drain timeout ran out, cancelled at shutdown.",
    unit="requests",
)

SPECS = (
    HTTP_SERVER_REQUEST_DURATION,
    HTTP_SERVER_REQUEST_BODY_SIZE,
    HTTP_SERVER_RESPONSE_BODY_SIZE,
    HTTP_SERVER_ACTIVE_REQUESTS,
    HTTP_SERVER_REQUESTS_DROPPED,
)

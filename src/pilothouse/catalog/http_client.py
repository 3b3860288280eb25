"""Outgoing HTTP request metrics (`pilothouse.telemetry.http_client`), named as the OpenTelemetry
HTTP metric conventions export to Prometheus (`http.client.request.duration`, stable:
https://opentelemetry.io/docs/specs/semconv/http/http-metrics/#metric-httpclientrequestduration).

Label values are bounded: `http_request_method` is one of http_server.STANDARD_METHODS or
http_server.OTHER_METHOD, `server_address` / `server_port` the host and port called (never the
URL's path or query), `http_response_status_code` the status (empty when none came back) and
`error_type` the status code for a 4xx/5xx answer or the exception's class when none came (empty
for a success).
"""

from pilothouse.catalog.spec import DEFAULT_LATENCY_BUCKETS, MetricSpec

HTTP_CLIENT_REQUEST_DURATION = MetricSpec(
    name="http_client_request_duration_seconds",
    type="histogram",
    help="Duration of HTTP requests this process made, by method, server, status code and error type.",
    labels=(
        "http_request_method",
        "server_address",
        "server_port",
        "http_response_status_code",
        "error_type",
    ),
    unit="seconds",
    buckets=DEFAULT_LATENCY_BUCKETS,
)

SPECS = (HTTP_CLIENT_REQUEST_DURATION,)

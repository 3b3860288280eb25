"""gRPC call metrics (`pilothouse.telemetry.grpc`'s interceptors), named as the OpenTelemetry RPC
metric conventions export to Prometheus (`rpc.server.call.duration`, `rpc.client.call.duration`).

Label values are bounded: `rpc_service` and `rpc_method` come from the methods a server
implements (an unimplemented method gets no span and no observation) or a client's stubs,
`rpc_grpc_status_code` is one of the 17 gRPC codes (its number, as `rpc.grpc.status_code`).
"""

from pilothouse.catalog.spec import DEFAULT_LATENCY_BUCKETS, MetricSpec

CALL_LABELS = ("rpc_service", "rpc_method", "rpc_grpc_status_code")
"""The labels of both histograms, in this order."""

RPC_SERVER_CALL_DURATION = MetricSpec(
    name="rpc_server_call_duration_seconds",
    type="histogram",
    help="Duration of gRPC calls this process served, by service, method and status code.",
    labels=CALL_LABELS,
    unit="seconds",
    buckets=DEFAULT_LATENCY_BUCKETS,
)
RPC_CLIENT_CALL_DURATION = MetricSpec(
    name="rpc_client_call_duration_seconds",
    type="histogram",
    help="Duration of gRPC calls this process made, by service, method and status code.",
    labels=CALL_LABELS,
    unit="seconds",
    buckets=DEFAULT_LATENCY_BUCKETS,
)

SPECS = (RPC_SERVER_CALL_DURATION, RPC_CLIENT_CALL_DURATION)

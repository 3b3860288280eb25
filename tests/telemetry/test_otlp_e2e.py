"""End to end: `pilothouse serve` exports OTLP (HTTP and gRPC) to a receiver run by the test,
which decodes the protobuf. Spans ended just before SIGTERM arrive through the shutdown flush."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.helpers import ServeProcess

TRACE_ID = "5bf92f3577b34da6a3ce929d0e0e4736"


class _Receiver(BaseHTTPRequestHandler):
    spans: list[Any]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = ExportTraceServiceRequest.FromString(body)
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                self.server.spans.extend(scope.spans)  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


class Receiver:
    """What an OTLP receiver got, and where it listens."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.spans: list[Any] = []

    def take(self, request: ExportTraceServiceRequest) -> None:
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                self.spans.extend(scope.spans)


@contextlib.contextmanager
def otlp_receiver() -> Iterator[Receiver]:
    """An OTLP/HTTP trace receiver on a free loopback port, answering 200, keeping every span."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    server.spans = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    receiver = Receiver(server.server_port)
    receiver.spans = server.spans  # type: ignore[attr-defined]
    try:
        yield receiver
    finally:
        server.shutdown()


@pytest.fixture
def http_receiver() -> Iterator[Receiver]:
    with otlp_receiver() as receiver:
        yield receiver


@pytest.fixture
def grpc_receiver() -> Iterator[Receiver]:
    """A real gRPC server (grpcio) implementing the OTLP TraceService."""
    from concurrent import futures

    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

    class TraceService(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request: ExportTraceServiceRequest, context: Any) -> Any:
            receiver.take(request)
            return trace_service_pb2.ExportTraceServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(TraceService(), server)  # type: ignore[no-untyped-call]
    receiver = Receiver(server.add_insecure_port("127.0.0.1:0"))
    server.start()
    yield receiver
    server.stop(grace=None)


@pytest.mark.parametrize(
    ("protocol", "chosen_by"),
    [("http", "file"), ("grpc", "file"), ("grpc", "OTEL_EXPORTER_OTLP_PROTOCOL")],
)
def test_spans_reach_an_otlp_receiver_after_sigterm(
    protocol: str,
    chosen_by: str,
    request: pytest.FixtureRequest,
    config_factory: Callable[..., Path],
    serve_env: dict[str, str],
    postgres_url: str,
) -> None:
    """The protocol set in the file, or (the file silent) by the OpenTelemetry variable."""
    receiver: Receiver = request.getfixturevalue(f"{protocol}_receiver")
    setting = f'otlp_protocol = "{protocol}"\n' if chosen_by == "file" else ""
    config = config_factory(f'traces = "otlp"\n{setting}correlation_header = "X-Transaction-ID"')
    env = {
        **serve_env,
        **({chosen_by: protocol} if chosen_by != "file" else {}),
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.port}",
        "OTEL_BSP_SCHEDULE_DELAY": "600000",  # nothing is exported before the shutdown flush
        "DEMO_DATABASE_URL": postgres_url,
    }
    serve = ServeProcess(config, env=env).start()
    try:
        r = httpx.get(
            f"{serve.app_url}/work",
            headers={"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01", "X-Transaction-ID": "TX-1"},
        )
        assert r.status_code == 200
        assert receiver.spans == []
        serve.signal(signal.SIGTERM)
        assert serve.wait(30) == 0, serve.output
    finally:
        serve.stop()
    spans = {span.name: span for span in receiver.spans}
    server, a, b, c, sql = (spans[n] for n in ("GET /work", "A", "B", "C", "SELECT"))
    assert server.trace_id.hex() == TRACE_ID
    assert server.parent_span_id.hex() == "00f067aa0ba902b7"
    for child, parent in ((a, server), (b, a), (c, b), (sql, c)):
        assert child.parent_span_id == parent.span_id, child.name
        assert child.trace_id == server.trace_id
    attributes = {kv.key: kv.value for kv in server.attributes}
    assert attributes["correlation_id"].string_value == "TX-1"
    assert attributes["http.route"].string_value == "/work"
    sql_attributes = {kv.key: kv.value.string_value for kv in sql.attributes}
    assert sql_attributes["db.query.text"] == "SELECT %s::int + 1"

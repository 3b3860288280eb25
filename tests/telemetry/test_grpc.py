"""gRPC spans and call metrics (`pilothouse.telemetry.grpc`): a real grpc.aio (and grpc) server and
client over 127.0.0.1, with a service defined without protoc (generic handlers, bytes in and out).
Spans go through Pilothouse's batch export and OTLP exporter to a real OTLP/HTTP receiver and are
decoded there with the official protobuf classes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import grpc.aio
import pytest
from opentelemetry import trace
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from prometheus_client import generate_latest

from pilothouse.telemetry import unit_of_work
from pilothouse.telemetry.batch import BatchExport
from pilothouse.telemetry.grpc import (
    aio_client_interceptors,
    aio_server_interceptor,
    client_interceptors,
    server_interceptor,
    split_method,
)
from pilothouse.telemetry.otlp_export import OtlpExporter, OtlpSettings
from pilothouse.telemetry.state import state
from tests.helpers import eventually
from tests.telemetry.conftest import HttpReceiver, value

SERVICE = "pilothouse.test.Runs"
SECRET = "s3cr3t-grpc-password"


class _While(SpanProcessor):
    """Passes finished spans on to `inner` while the test runs (the global provider outlives it)."""

    def __init__(self, inner: SpanProcessor) -> None:
        self.inner: SpanProcessor | None = inner

    def on_end(self, span: ReadableSpan) -> None:
        if self.inner is not None:
            self.inner.on_end(span)


@pytest.fixture
def exported(_memory_exporter: object, http_receiver: HttpReceiver) -> Iterator[Any]:
    """Flushes Pilothouse's batch export (OTLP/HTTP to the receiver), returns the spans decoded."""
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)  # the telemetry tests' shared provider
    exporter = OtlpExporter(
        OtlpSettings.from_env(
            "http", {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{http_receiver.port}"}
        )
    )
    batch = BatchExport(exporter, flush_timeout=10)
    switch = _While(batch)
    provider.add_span_processor(switch)

    def flushed() -> dict[str, list[Span]]:
        assert batch.force_flush(10_000)
        by_name: dict[str, list[Span]] = {}
        for _, request in http_receiver.requests:
            for resource in request.resource_spans:
                for scope in resource.scope_spans:
                    for span in scope.spans:
                        by_name.setdefault(span.name, []).append(span)
        return by_name

    yield flushed
    switch.inner = None
    batch.shutdown()


def attrs(span: Span) -> dict[str, Any]:
    return {kv.key: getattr(kv.value, kv.value.WhichOneof("value")) for kv in span.attributes}


# -- the service: bytes in, bytes out --------------------------------------------------------


async def get_run(request: bytes, context: Any) -> bytes:
    with unit_of_work("lookup"):  # a child span: the server span is current in the handler
        if request == b"shop-1":
            return b"passed"
    await context.abort(grpc.StatusCode.NOT_FOUND, f"no run {request.decode()}")
    raise AssertionError("abort raises")


async def report(request: bytes, context: Any) -> bytes:
    raise RuntimeError(f"cannot store the report: postgresql://ci:{SECRET}@db/ci refused")


async def steps(request: bytes, context: Any) -> Any:
    for step in (b"checkout", b"compile"):
        yield step


def _handlers(get: Any, fail: Any, stream: Any) -> Any:
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Get": grpc.unary_unary_rpc_method_handler(get),
            "Report": grpc.unary_unary_rpc_method_handler(fail),
            "Steps": grpc.unary_stream_rpc_method_handler(stream),
        },
    )


async def test_one_trace_from_client_to_server_with_status_for_ok_not_found_and_an_exception(
    exported: Any,
) -> None:
    interceptor = aio_server_interceptor("127.0.0.1")
    server = grpc.aio.server(interceptors=[interceptor])
    server.add_generic_rpc_handlers([_handlers(get_run, report, steps)])
    port = server.add_insecure_port("127.0.0.1:0")
    interceptor.server_port = port
    await server.start()
    target = f"127.0.0.1:{port}"
    codes: dict[str, Any] = {}
    try:
        async with grpc.aio.insecure_channel(target, interceptors=aio_client_interceptors(target)) as channel:
            with trace.get_tracer("test").start_as_current_span("caller"):
                assert await channel.unary_unary(f"/{SERVICE}/Get")(b"shop-1") == b"passed"
                for method, body in (("Get", b"nope-9"), ("Report", b"{}")):
                    with pytest.raises(grpc.aio.AioRpcError) as failed:
                        await channel.unary_unary(f"/{SERVICE}/{method}")(body)
                    codes[method] = failed.value.code()
                streamed = [r async for r in channel.unary_stream(f"/{SERVICE}/Steps")(b"shop-1")]
    finally:
        await server.stop(None)
    assert codes == {"Get": grpc.StatusCode.NOT_FOUND, "Report": grpc.StatusCode.UNKNOWN}
    assert streamed == [b"checkout", b"compile"]

    spans = exported()
    (caller,) = spans["caller"]
    assert len(spans[f"{SERVICE}/Get"]) == 4  # OK and NOT_FOUND, client and server each
    by_kind: dict[int, list[Span]] = {Span.SPAN_KIND_CLIENT: [], Span.SPAN_KIND_SERVER: []}
    for name in (f"{SERVICE}/Get", f"{SERVICE}/Report", f"{SERVICE}/Steps"):
        for span in spans[name]:
            by_kind[span.kind].append(span)
    assert len(by_kind[Span.SPAN_KIND_CLIENT]) == len(by_kind[Span.SPAN_KIND_SERVER]) == 4

    # One trace: caller -> CLIENT -> SERVER -> lookup, for every call.
    servers_by_parent = {s.parent_span_id: s for s in by_kind[Span.SPAN_KIND_SERVER]}
    for client in by_kind[Span.SPAN_KIND_CLIENT]:
        assert client.trace_id == caller.trace_id and client.parent_span_id == caller.span_id, client.name
        server_span = servers_by_parent[client.span_id]  # the server continued the client's context
        assert server_span.trace_id == caller.trace_id and server_span.name == client.name
    lookups = spans["lookup"]
    assert {lk.parent_span_id for lk in lookups} == {
        s.span_id for s in by_kind[Span.SPAN_KIND_SERVER] if s.name.endswith("/Get")
    }

    def pair(method: str, code: int) -> tuple[Span, Span]:
        client = next(
            s
            for s in by_kind[Span.SPAN_KIND_CLIENT]
            if s.name == f"{SERVICE}/{method}" and attrs(s).get("rpc.grpc.status_code") == code
        )
        return client, servers_by_parent[client.span_id]

    common = {
        "rpc.system": "grpc",
        "rpc.service": SERVICE,
        "server.address": "127.0.0.1",
        "server.port": port,
    }
    ok_client, ok_server = pair("Get", 0)
    assert attrs(ok_client) == {**common, "rpc.method": "Get", "rpc.grpc.status_code": 0}
    server_attrs = attrs(ok_server)
    assert server_attrs.pop("network.peer.address") == "127.0.0.1"
    assert server_attrs.pop("network.peer.port") > 0
    assert server_attrs == {**common, "rpc.method": "Get", "rpc.grpc.status_code": 0}
    assert ok_client.status.code == ok_server.status.code == Status.STATUS_CODE_UNSET

    # NOT_FOUND: the caller's error (the client span), not the server's (gRPC conventions).
    nf_client, nf_server = pair("Get", 5)
    assert attrs(nf_client)["error.type"] == "NOT_FOUND"
    assert (nf_client.status.code, nf_client.status.message) == (Status.STATUS_CODE_ERROR, "NOT_FOUND")
    assert attrs(nf_server)["rpc.grpc.status_code"] == 5 and "error.type" not in attrs(nf_server)
    assert nf_server.status.code == Status.STATUS_CODE_UNSET
    assert "no run" not in str(nf_client) + str(nf_server)  # status details are not recorded

    # An exception: UNKNOWN on both sides, the server span carries it as an event, redacted.
    ex_client, ex_server = pair("Report", 2)
    assert (ex_client.status.code, ex_client.status.message) == (Status.STATUS_CODE_ERROR, "UNKNOWN")
    assert (ex_server.status.code, ex_server.status.message) == (Status.STATUS_CODE_ERROR, "RuntimeError")
    assert attrs(ex_server)["error.type"] == "RuntimeError" and attrs(ex_server)["rpc.grpc.status_code"] == 2
    (event,) = ex_server.events
    fields = attrs(event)  # type: ignore[arg-type]
    assert event.name == "exception" and fields["exception.type"] == "RuntimeError"
    assert "cannot store the report" in fields["exception.message"]
    assert "Traceback" in fields["exception.stacktrace"]
    assert SECRET not in str(ex_server) and SECRET not in str(ex_client)

    # A streamed response: the client span ends when the stream does.
    stream_client, stream_server = pair("Steps", 0)
    assert stream_server.status.code == stream_client.status.code == Status.STATUS_CODE_UNSET

    scrape = generate_latest(state.metrics.registry).decode()
    for family in ("rpc_server_call_duration_seconds_count", "rpc_client_call_duration_seconds_count"):
        for method, code in (("Get", "0"), ("Get", "5"), ("Report", "2"), ("Steps", "0")):
            assert (
                value(scrape, family, rpc_service=SERVICE, rpc_method=method, rpc_grpc_status_code=code) >= 1
            )


def test_sync_server_and_client_make_the_same_trace(exported: Any) -> None:
    def get(request: bytes, context: Any) -> bytes:
        if request == b"shop-1":
            return b"passed"
        context.abort(grpc.StatusCode.NOT_FOUND, "no such run")
        raise AssertionError("abort raises")

    def fail(request: bytes, context: Any) -> bytes:
        raise ValueError(f"password={SECRET}")

    def stream(request: bytes, context: Any) -> Iterator[bytes]:
        yield b"checkout"

    interceptor = server_interceptor("127.0.0.1")
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), interceptors=[interceptor])
    server.add_generic_rpc_handlers([_handlers(get, fail, stream)])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    target = f"127.0.0.1:{port}"
    try:
        with grpc.insecure_channel(target) as plain:
            channel = grpc.intercept_channel(plain, *client_interceptors(target))
            assert channel.unary_unary(f"/{SERVICE}/Get")(b"shop-1") == b"passed"
            for method in ("Get", "Report"):
                with pytest.raises(grpc.RpcError):
                    channel.unary_unary(f"/{SERVICE}/{method}")(b"nope")
            assert list(channel.unary_stream(f"/{SERVICE}/Steps")(b"x")) == [b"checkout"]
    finally:
        server.stop(None)
    spans = exported()
    calls = [s for name, found in spans.items() if name.startswith(SERVICE) for s in found]
    clients = {s.span_id: s for s in calls if s.kind == Span.SPAN_KIND_CLIENT}
    servers = [s for s in calls if s.kind == Span.SPAN_KIND_SERVER]
    assert len(clients) == len(servers) == 4
    outcome = set()
    for server_span in servers:
        client = clients[server_span.parent_span_id]
        assert client.trace_id == server_span.trace_id
        outcome.add(
            (
                server_span.name,
                attrs(server_span)["rpc.grpc.status_code"],
                server_span.status.code,
                client.status.code,
            )
        )
    assert outcome == {
        (f"{SERVICE}/Get", 0, Status.STATUS_CODE_UNSET, Status.STATUS_CODE_UNSET),
        (f"{SERVICE}/Get", 5, Status.STATUS_CODE_UNSET, Status.STATUS_CODE_ERROR),
        (f"{SERVICE}/Report", 2, Status.STATUS_CODE_ERROR, Status.STATUS_CODE_ERROR),
        (f"{SERVICE}/Steps", 0, Status.STATUS_CODE_UNSET, Status.STATUS_CODE_UNSET),
    }
    assert SECRET not in str(servers)


async def test_an_incoming_traceparent_is_continued_and_a_bad_one_starts_a_trace(exported: Any) -> None:
    """A caller that is not instrumented by Pilothouse, sending W3C trace context by hand."""
    interceptor = aio_server_interceptor()
    server = grpc.aio.server(interceptors=[interceptor])
    server.add_generic_rpc_handlers([_handlers(get_run, report, steps)])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            get = channel.unary_unary(f"/{SERVICE}/Get")
            await get(b"shop-1", metadata=(("traceparent", parent), ("tracestate", "ci=runner-7")))
            await get(b"shop-1", metadata=(("traceparent", "00-zz-bad-01"),))
    finally:
        await server.stop(None)
    continued, fresh = sorted(exported()[f"{SERVICE}/Get"], key=lambda s: s.start_time_unix_nano)
    assert continued.trace_id.hex() == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert continued.parent_span_id.hex() == "00f067aa0ba902b7"
    assert continued.trace_state == "ci=runner-7"
    assert fresh.trace_id.hex() != continued.trace_id.hex() and fresh.parent_span_id == b""
    assert "server.address" not in attrs(continued)  # not told: not recorded


def test_method_names_split_into_service_and_method() -> None:
    assert split_method("/ci.runner.v1.Status/Report") == (
        "ci.runner.v1.Status/Report",
        "ci.runner.v1.Status",
        "Report",
    )
    assert split_method(b"/Echo/Say") == ("Echo/Say", "Echo", "Say")


def test_grpcio_is_imported_only_when_an_interceptor_is_made() -> None:
    from tests.test_layers import loaded_after

    assert "grpc" not in loaded_after("import pilothouse.telemetry.feature, pilothouse.telemetry.grpc")
    assert "grpc" in loaded_after("import pilothouse.telemetry.grpc as g; g.aio_server_interceptor()")


async def test_streamed_requests_and_a_deadline_the_handler_missed(exported: Any) -> None:
    """Client streaming and bidirectional calls trace as the unary ones; a call past its deadline
    is DEADLINE_EXCEEDED on the client, and the server span of the cancelled handler ends too."""
    release = asyncio.Event()  # never set: the handler waits past the deadline

    async def collect(requests: Any, context: Any) -> bytes:
        return b",".join([r async for r in requests])

    async def echo(requests: Any, context: Any) -> Any:
        async for request in requests:
            yield request.upper()

    async def stuck(request: bytes, context: Any) -> bytes:
        await release.wait()
        return b""

    interceptor = aio_server_interceptor()
    server = grpc.aio.server(interceptors=[interceptor])
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                SERVICE,
                {
                    "Collect": grpc.stream_unary_rpc_method_handler(collect),
                    "Gather": grpc.stream_unary_rpc_method_handler(collect),
                    "Echo": grpc.stream_stream_rpc_method_handler(echo),
                    "Stuck": grpc.unary_unary_rpc_method_handler(stuck),
                },
            )
        ]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    target = f"127.0.0.1:{port}"
    try:
        async with grpc.aio.insecure_channel(target, interceptors=aio_client_interceptors(target)) as channel:
            assert await channel.stream_unary(f"/{SERVICE}/Collect")(iter([b"a", b"b"])) == b"a,b"
            # Requests written one by one: the interceptor hands the call back at once (waiting
            # for its end there would wait for writes that can only come after it returned).
            gather = channel.stream_unary(f"/{SERVICE}/Gather")()
            await asyncio.wait_for(gather.write(b"w"), 10)
            await asyncio.wait_for(gather.done_writing(), 10)
            assert await asyncio.wait_for(gather, 10) == b"w"
            echoed = [r async for r in channel.stream_stream(f"/{SERVICE}/Echo")(iter([b"x", b"y"]))]
            assert echoed == [b"X", b"Y"]
            with pytest.raises(grpc.aio.AioRpcError) as late:
                await channel.unary_unary(f"/{SERVICE}/Stuck")(b"", timeout=0.2)
            assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    finally:
        await server.stop(None)

    def ended() -> dict[str, list[Span]]:
        spans = exported()
        done = all(len(spans.get(f"{SERVICE}/{m}", ())) == 2 for m in ("Echo", "Gather"))
        return spans if done else {}

    eventually(lambda: bool(ended()))  # a streamed call's client span ends in a task after the stream
    spans = ended()
    for method in ("Collect", "Gather", "Echo"):
        client, server_span = sorted(spans[f"{SERVICE}/{method}"], key=lambda s: s.kind, reverse=True)
        assert (client.kind, server_span.kind) == (Span.SPAN_KIND_CLIENT, Span.SPAN_KIND_SERVER)
        assert server_span.parent_span_id == client.span_id and server_span.trace_id == client.trace_id
        assert attrs(client)["rpc.grpc.status_code"] == attrs(server_span)["rpc.grpc.status_code"] == 0
    client, server_span = sorted(spans[f"{SERVICE}/Stuck"], key=lambda s: s.kind, reverse=True)
    assert attrs(client)["rpc.grpc.status_code"] == 4 and client.status.message == "DEADLINE_EXCEEDED"
    assert server_span.parent_span_id == client.span_id
    assert not server_span.events  # cancelled by gRPC, not an exception of the handler
    assert attrs(server_span)["rpc.grpc.status_code"] == 4  # the deadline passed (not CANCELLED: 1)
    assert (server_span.status.code, server_span.status.message) == (
        Status.STATUS_CODE_ERROR,
        "DEADLINE_EXCEEDED",
    )

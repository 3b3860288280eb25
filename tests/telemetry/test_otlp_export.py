"""Pilothouse's own OTLP exporter (telemetry/otlp_export.py, otlp_encode.py) against real
receivers: what it sends is decoded with the official protobuf definitions (opentelemetry-proto)
and must equal what the OpenTelemetry SDK's own encoder makes of the same spans, over HTTP and
gRPC; retries, gzip and headers as a receiver sees them; and receivers that hang or refuse
never hold up requests or the shutdown, their spans counted as dropped."""

from __future__ import annotations

import re
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pilothouse.errors import ConfigError
from pilothouse.telemetry.otlp_export import OtlpExporter, OtlpSettings, retry_after_seconds
from pilothouse.telemetry.server_span import ServerSpanStarter
from tests.helpers import ServeProcess, self_signed_certificate
from tests.telemetry.conftest import HttpReceiver, value

REMOTE_PARENT = "00-5bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


# -- receivers ---------------------------------------------------------------------------------


@pytest.fixture
def grpc_receiver() -> Iterator[tuple[int, list[tuple[dict[str, str], ExportTraceServiceRequest]]]]:
    """A real gRPC server (grpcio) implementing the OTLP TraceService from the official stubs."""
    from concurrent import futures

    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

    got: list[tuple[dict[str, str], ExportTraceServiceRequest]] = []

    class TraceService(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request: ExportTraceServiceRequest, context: Any) -> Any:
            got.append((dict(context.invocation_metadata()), request))
            return trace_service_pb2.ExportTraceServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(TraceService(), server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield port, got
    server.stop(grace=None)


# -- spans of every shape -------------------------------------------------------------------


def every_kind_of_span() -> list[ReadableSpan]:
    """SDK spans of every kind with attributes of every value type, events, an exception, a
    link, statuses, a remote parent; and a Pilothouse `ServerSpan` (the request path's)."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create(
            {
                "service.name": "wire",
                "service.version": "1.2.3",
                "replicas": 3,
                "ratio": 0.5,
                "canary": True,
                "zones": ("a", "b"),
            }
        )
    )
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("pilothouse", "9.9")
    remote = trace.propagation.set_span_in_context(
        trace.NonRecordingSpan(
            trace.SpanContext(
                0x5BF92F3577B34DA6A3CE929D0E0E4736,
                0x00F067AA0BA902B7,
                True,
                trace.TraceFlags(1),
                trace.TraceState([("vendor", "x1")]),
            )
        )
    )
    attributes = {
        "text": "héllo",
        "int": 42,
        "negative": -7,
        "big": 2**62,
        "float": 3.25,
        "true": True,
        "false": False,
        "texts": ("a", "b"),
        "ints": (1, -2),
        "floats": (0.5, 1.5),
        "bools": (True, False),
    }
    kinds = [
        trace.SpanKind.SERVER,
        trace.SpanKind.CLIENT,
        trace.SpanKind.PRODUCER,
        trace.SpanKind.CONSUMER,
        trace.SpanKind.INTERNAL,
    ]
    with tracer.start_as_current_span("root", context=remote, kind=kinds[0], attributes=attributes) as root:
        root.add_event("checkpoint", {"step": 1, "ok": True})
        root.set_status(trace.StatusCode.OK)
        for kind in kinds[1:]:
            link = trace.Link(root.get_span_context(), {"why": "follows"})
            with tracer.start_as_current_span(kind.name.lower(), kind=kind, links=[link]) as child:
                if kind is trace.SpanKind.CLIENT:
                    try:
                        raise ValueError("bad input")
                    except ValueError as exc:
                        child.record_exception(exc)
                        child.set_status(trace.StatusCode.ERROR, "bad input")
    starter = ServerSpanStarter(provider.get_tracer("pilothouse"), 1.0)  # type: ignore[arg-type]
    server = starter.start("GET", {"http.request.method": "GET", "url.path": "/x"}, REMOTE_PARENT, None, None)
    server.set_attribute("http.response.status_code", 500)
    server.record_exception(RuntimeError("boom"))
    server.set_status(trace.Status(trace.StatusCode.ERROR, "RuntimeError"))
    server.end()
    return list(memory.get_finished_spans())


def without_trace_flags(request: ExportTraceServiceRequest) -> ExportTraceServiceRequest:
    """The SDK's encoder writes only the is-remote bits of `flags` and no link `trace_state`;
    ours also the W3C trace flags (the low byte, as trace.proto asks) and the linked span's
    trace state: checked, then cleared to compare the rest."""
    copy = ExportTraceServiceRequest()
    copy.CopyFrom(request)
    for resource in copy.resource_spans:
        for scope in resource.scope_spans:
            for span in scope.spans:
                assert span.flags & 0xFF == 1  # sampled
                span.flags &= ~0xFF
                for link in span.links:
                    link.flags &= ~0xFF
                    assert link.trace_state == "vendor=x1"  # the root's, inherited from its parent
                    link.ClearField("trace_state")
    return copy


def spans_by_name(request: ExportTraceServiceRequest) -> dict[str, Any]:
    return {s.name: s for r in request.resource_spans for sc in r.scope_spans for s in sc.spans}


def check_decoded(request: ExportTraceServiceRequest, spans: list[ReadableSpan]) -> None:
    assert without_trace_flags(request) == encode_spans(spans)  # the official encoder's message
    (resource,) = request.resource_spans
    resource_attributes = {kv.key: kv.value for kv in resource.resource.attributes}
    assert resource_attributes["service.name"].string_value == "wire"
    assert resource_attributes["replicas"].int_value == 3
    assert [v.string_value for v in resource_attributes["zones"].array_value.values] == ["a", "b"]
    by_name = spans_by_name(request)
    root = by_name["root"]
    assert root.trace_id.hex() == "5bf92f3577b34da6a3ce929d0e0e4736"
    assert root.parent_span_id.hex() == "00f067aa0ba902b7"
    assert root.trace_state == "vendor=x1"
    assert root.flags == 0x301  # sampled, the parent is known to be remote
    assert root.kind == 2  # SPAN_KIND_SERVER
    attributes = {kv.key: kv.value for kv in root.attributes}
    assert attributes["text"].string_value == "héllo"
    assert attributes["negative"].int_value == -7
    assert attributes["big"].int_value == 2**62
    assert attributes["float"].double_value == 3.25
    assert attributes["false"].HasField("bool_value") and not attributes["false"].bool_value
    assert [v.double_value for v in attributes["floats"].array_value.values] == [0.5, 1.5]
    assert root.status.code == 1  # OK
    (event,) = root.events
    assert event.name == "checkpoint" and event.attributes[0].value.int_value == 1
    client = by_name["client"]
    assert client.kind == 3 and client.parent_span_id == root.span_id
    assert client.status.code == 2 and client.status.message == "bad input"
    (exception,) = client.events
    exception_attributes = {kv.key: kv.value.string_value for kv in exception.attributes}
    assert exception.name == "exception" and exception_attributes["exception.type"] == "ValueError"
    assert "bad input" in exception_attributes["exception.stacktrace"]
    (link,) = client.links
    assert link.span_id == root.span_id and link.attributes[0].value.string_value == "follows"
    assert {by_name[n].kind for n in ("producer", "consumer", "internal")} == {4, 5, 1}
    server = by_name["GET"]
    assert server.parent_span_id.hex() == "00f067aa0ba902b7"
    assert server.status.code == 2 and server.events[0].name == "exception"


def test_http_export_decodes_as_the_official_encoders_message(http_receiver: HttpReceiver) -> None:
    spans = every_kind_of_span()
    exporter = OtlpExporter(
        OtlpSettings.from_env(
            "http",
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{http_receiver.port}",
                "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "x-tenant=acme,authorization=Bearer%20t0k",
                "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
            },
        )
    )
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    exporter.shutdown()
    ((headers, request),) = http_receiver.requests
    assert headers["content-type"] == "application/x-protobuf"
    assert headers["content-encoding"] == "gzip"
    assert headers["x-tenant"] == "acme" and headers["authorization"] == "Bearer t0k"
    check_decoded(request, spans)


def test_grpc_export_decodes_as_the_official_encoders_message(
    grpc_receiver: tuple[int, list[tuple[dict[str, str], ExportTraceServiceRequest]]],
) -> None:
    port, got = grpc_receiver
    spans = every_kind_of_span()
    exporter = OtlpExporter(
        OtlpSettings.from_env(
            "grpc",
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
                "OTEL_EXPORTER_OTLP_HEADERS": "x-tenant=acme",
                "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
            },
        )
    )
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    exporter.shutdown()
    ((metadata, request),) = got
    assert metadata["x-tenant"] == "acme"
    check_decoded(request, spans)


def server_spans_of_every_shape() -> list[ReadableSpan]:
    """`ServerSpan`s as requests make them: new and continued traces (remote parent, trace
    state), every attribute value type, names and values past one length byte, events, error
    and OK statuses; and the same span twice, so the second is encoded from
    the caches."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "wire"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    starter = ServerSpanStarter(provider.get_tracer("pilothouse"), None)  # type: ignore[arg-type]
    long = "x" * 200
    shapes: list[tuple[str | None, str | None, dict[str, Any]]] = [
        (None, None, {}),
        (REMOTE_PARENT, None, {"http.response.status_code": 200, "http.route": "/items/{id}"}),
        (REMOTE_PARENT, "vendor=x1,other=y2", {"text": "héllo", "ratio": 0.5, "negative_zero": -0.0}),
        ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", None, {"flag": True, "one": 1}),
        (None, None, {"big": 2**62, "negative": -7, "ints": (1, -2), "texts": ("a", "b"), "long": long}),
        (None, None, {"zero": 0.0, "false": False, "zero_int": 0, long: "key past one length byte"}),
    ]
    for header, state, attributes in shapes:
        for _ in range(2):
            attrs = {"http.request.method": "GET", "url.path": "/x"}
            span: Any = starter.start("GET", attrs, header, state, None)
            span.set_attributes(attributes)
            span._name = f"GET /{long}" if "long" in attributes else "GET /items/{id}"
            if "one" in attributes:
                span.add_event("checkpoint", {"step": 1})
                span.set_status(trace.StatusCode.OK)
            if "big" in attributes:
                span.record_exception(RuntimeError("boom"))
                span.set_status(trace.Status(trace.StatusCode.ERROR, "RuntimeError"))
            span.end()
    return list(memory.get_finished_spans())


def test_server_spans_encode_as_any_span_and_as_the_official_encoder() -> None:
    """The request path's spans take `encode_server_span` (their fields read directly, shared
    parts packed together): the same bytes as the general `encode_span`, and the same message
    as the SDK's encoder once decoded."""
    from pilothouse.telemetry.otlp_encode import encode_request, encode_server_span, encode_span

    spans = server_spans_of_every_shape()
    assert len(spans) == 12
    for span in spans:
        assert encode_server_span(span) == encode_span(span)  # type: ignore[arg-type]
    request = ExportTraceServiceRequest.FromString(encode_request(spans))
    expected = encode_spans(spans)
    for resource in request.resource_spans:
        for scope in resource.scope_spans:
            for span in scope.spans:
                span.flags &= ~0xFF  # the SDK's encoder leaves out the W3C trace flags
    assert request == expected


def test_cached_attribute_fields_keep_equal_values_of_other_types_apart() -> None:
    """Attribute fields are cached by their `(key, value)` item, one cache for texts and one for
    ints: values that are equal across types (`1 == True == 1.0`, `0 == False == 0.0 == -0.0`) keep
    their own encoding span after span, server spans and SDK spans alike, as the official encoder
    writes them."""
    from pilothouse.telemetry.otlp_encode import encode_request

    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "wire"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    starter = ServerSpanStarter(provider.get_tracer("pilothouse"), 1.0)
    tracer = provider.get_tracer("sdk")
    values: list[Any] = [1, True, 1.0, "1", 0, False, 0.0, -0.0, "", 2**63 - 1, -1, "True"]
    for one in values * 2:
        span: Any = starter.start_new("GET", {"http.request.method": "GET", "v": one})
        span.end()
        with tracer.start_as_current_span("sdk", attributes={"v": one}):
            pass
    spans = list(memory.get_finished_spans())
    request = ExportTraceServiceRequest.FromString(encode_request(spans))
    for resource in request.resource_spans:
        for scope in resource.scope_spans:
            for one in scope.spans:
                one.flags &= ~0xFF  # the SDK's encoder leaves out the W3C trace flags
    assert request == encode_spans(spans)
    decoded = [
        {kv.key: kv.value for kv in span.attributes}["v"]
        for resource in request.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    ]
    kinds = [value.WhichOneof("value") for value in decoded]
    expected = {int: "int_value", bool: "bool_value", float: "double_value", str: "string_value"}
    assert kinds == [expected[type(one)] for one in values * 2] * 2  # server spans, then SDK spans
    assert str(decoded[7].double_value) == "-0.0"


def test_a_span_built_by_hand_with_a_list_value_encodes_as_the_official_encoder() -> None:
    """A `ReadableSpan` an exporter or test builds itself may hold a list (unhashable: the
    cache cannot be asked about it); it is encoded all the same."""
    from opentelemetry.trace import SpanContext

    from pilothouse.telemetry.otlp_encode import encode_request

    context = SpanContext(0x5BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7, False)
    attributes: Any = {"http.request.method": "GET", "ids": [1, 2], "http.response.status_code": 200}
    span = ReadableSpan(name="by hand", context=context, attributes=attributes, resource=Resource.create({}))
    request = ExportTraceServiceRequest.FromString(encode_request([span]))
    request.resource_spans[0].scope_spans[0].spans[0].flags &= ~0xFF
    assert request == encode_spans([span])


def test_a_first_span_without_resource_or_scope_is_still_encoded() -> None:
    """The batch's grouping starts from no group at all: a first span whose resource and scope
    are both None (a span an exporter built by hand) gets a group like any other."""
    from opentelemetry.trace import SpanContext

    from pilothouse.telemetry.otlp_encode import encode_request

    span: Any = ReadableSpan(name="by hand", context=SpanContext(7, 8, False))
    span._resource = None
    request = ExportTraceServiceRequest.FromString(encode_request([span]))
    assert [one.name for rs in request.resource_spans for ss in rs.scope_spans for one in ss.spans] == [
        "by hand"
    ]


def test_the_attribute_cache_stays_bounded_and_keeps_what_repeats() -> None:
    """Values that never repeat (a path with an id per request) are dropped once a key holds
    too many, so the cache stays bounded; the values that repeat are cached again."""
    from pilothouse.telemetry import otlp_encode

    tag = b"\x4a"
    for n in range(3 * otlp_encode._MAX_CACHED_VALUES):
        otlp_encode._attributes(tag, {"url.path": f"/items/{n}", "http.request.method": "GET"})
    cache = otlp_encode._FIELDS[tag]
    paths = [item for item in cache.texts if item[0] == "url.path"]
    assert 0 < len(paths) <= otlp_encode._MAX_CACHED_VALUES
    assert ("http.request.method", "GET") in cache.texts
    assert len(cache.items_by_key[("url.path", str)]) == len(paths)


def test_429_and_503_are_retried_after_retry_after(http_receiver: HttpReceiver) -> None:
    http_receiver.answers = [(503, {"Retry-After": "0"}), (429, {"Retry-After": "0"})]
    exporter = OtlpExporter(
        OtlpSettings.from_env(
            "http",
            {
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"http://127.0.0.1:{http_receiver.port}/custom/path",
            },
        )
    )
    assert exporter.export(every_kind_of_span()) is SpanExportResult.SUCCESS
    assert len(http_receiver.requests) == 3  # two refusals, then delivered


def test_a_non_retryable_answer_fails_the_batch_at_once(http_receiver: HttpReceiver) -> None:
    http_receiver.answers = [(400, {})]
    exporter = OtlpExporter(
        OtlpSettings.from_env(
            "http",
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{http_receiver.port}",
            },
        )
    )
    assert exporter.export(every_kind_of_span()) is SpanExportResult.FAILURE
    assert len(http_receiver.requests) == 1


def test_retry_after_forms() -> None:
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None
    assert retry_after_seconds("\u00b2") is None  # a digit to `isdigit`, not to `float`


def test_settings_follow_the_opentelemetry_variables(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not read here")
    settings = OtlpSettings.from_env(
        "http",
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector:4318/",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "2.5",
            "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "4",
            "OTEL_EXPORTER_OTLP_CERTIFICATE": str(ca),
            "OTEL_EXPORTER_OTLP_COMPRESSION": "none",
        },
    )
    assert settings.endpoint == "https://collector:4318/v1/traces"
    assert settings.timeout == 4.0 and settings.certificate == str(ca) and not settings.gzip
    assert OtlpSettings.from_env("http", {}).endpoint == "http://localhost:4318/v1/traces"
    assert OtlpSettings.from_env("grpc", {}).endpoint == "http://localhost:4317"
    # The protocol: the file's when it sets one (not None), else the variables, else HTTP.
    assert OtlpSettings.from_env(None, {}).protocol == "http"
    grpc_env = {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
    assert OtlpSettings.from_env(None, grpc_env).endpoint == "http://localhost:4317"
    assert OtlpSettings.from_env("http", grpc_env).protocol == "http"
    both = {**grpc_env, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}
    assert OtlpSettings.from_env(None, both).protocol == "http"
    for variable, raw, says in [
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "brotli", "expected 'gzip' or 'none'"),
        ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "-1", "expected seconds > 0"),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent.pem", "no such file"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318", "is not an http(s) URL"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json", "expected 'grpc' or 'http/protobuf'"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(f"{variable}: {raw!r}") + ".*" + re.escape(says)):
            OtlpSettings.from_env(None, {variable: raw})


# -- receivers that hang or refuse, under `pilothouse serve` -------------------------------------


@pytest.fixture
def hanging_endpoint() -> Iterator[str]:
    """Accepts connections and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


@pytest.fixture
def refusing_endpoint() -> Iterator[str]:
    """A port bound and not listening: every connection is refused (and nobody else gets it)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


@pytest.mark.parametrize("endpoint", ["hanging_endpoint", "refusing_endpoint"])
def test_a_stuck_receiver_costs_requests_nothing_and_shutdown_keeps_its_deadline(
    endpoint: str,
    request: pytest.FixtureRequest,
    config_factory: Callable[..., Path],
    serve_env: dict[str, str],
) -> None:
    url: str = request.getfixturevalue(endpoint)
    env = {
        **serve_env,
        "OTEL_EXPORTER_OTLP_ENDPOINT": url,
        # One export waits (or retries) for ten minutes: the shutdown must not wait with it.
        "OTEL_EXPORTER_OTLP_TIMEOUT": "600",
        "OTEL_BSP_SCHEDULE_DELAY": "10",
        "OTEL_BSP_MAX_QUEUE_SIZE": "4",
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "2",
    }
    serve = ServeProcess(config_factory('traces = "otlp"'), env=env).start()
    requests = 60
    try:
        with httpx.Client(base_url=serve.app_url, timeout=30) as client:
            for i in range(requests):
                assert client.get(f"/items/{i}").status_code == 200
        scrape = httpx.get(f"{serve.ops_url}/metrics").text
        # At most a full queue and the batch being sent are not dropped.
        dropped = value(scrape, "pilothouse_spans_dropped_total", reason="queue_full")
        assert requests - 4 - 2 <= dropped <= requests, scrape
        serve.signal(signal.SIGTERM)
        # flush_timeout is 5 s: a shutdown that waited on the 600 s export would not end here.
        assert serve.wait(60) == 0, serve.output
    finally:
        serve.stop()


def test_spans_reach_a_receiver_through_serve_with_gzip(
    http_receiver: HttpReceiver, config_factory: Callable[..., Path], serve_env: dict[str, str]
) -> None:
    env = {
        **serve_env,
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{http_receiver.port}",
        "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
        "OTEL_BSP_SCHEDULE_DELAY": "10",
    }
    serve = ServeProcess(config_factory('traces = "otlp"'), env=env).start()
    try:
        r = httpx.get(f"{serve.app_url}/items/7", headers={"traceparent": REMOTE_PARENT})
        assert r.status_code == 200
        http_receiver.wait_for(1)
    finally:
        serve.stop()
    headers, request = http_receiver.requests[0]
    assert headers["content-encoding"] == "gzip"
    span = spans_by_name(request)["GET /items/{id}"]
    assert span.parent_span_id.hex() == "00f067aa0ba902b7"
    resource = {kv.key: kv.value.string_value for kv in request.resource_spans[0].resource.attributes}
    assert resource["service.name"] == "demo" and resource["service.version"] == "1.2.3"


def test_https_receiver_is_verified_with_the_configured_certificate(
    http_receiver: HttpReceiver, tmp_path: Path
) -> None:
    """OTEL_EXPORTER_OTLP_CERTIFICATE: the receiver's certificate is verified against it (and
    an export without it fails: the certificate is not one the system trusts)."""
    import ssl

    cert, key = self_signed_certificate(tmp_path, "otlp", days=1, common_name="otlp-test", ip="127.0.0.1")
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    http_receiver.server.socket = tls.wrap_socket(http_receiver.server.socket, server_side=True)
    url = f"https://127.0.0.1:{http_receiver.port}"
    spans = every_kind_of_span()
    untrusting = OtlpExporter(
        OtlpSettings.from_env(
            "http", {"OTEL_EXPORTER_OTLP_ENDPOINT": url, "OTEL_EXPORTER_OTLP_TIMEOUT": "0.5"}
        )
    )
    assert untrusting.export(spans) is SpanExportResult.FAILURE
    trusting = OtlpExporter(
        OtlpSettings.from_env(
            "http", {"OTEL_EXPORTER_OTLP_ENDPOINT": url, "OTEL_EXPORTER_OTLP_CERTIFICATE": str(cert)}
        )
    )
    assert trusting.export(spans) is SpanExportResult.SUCCESS
    assert len(http_receiver.requests) == 1
    untrusting.shutdown()
    trusting.shutdown()


def test_grpc_unavailable_is_retried_and_invalid_argument_is_not() -> None:
    """A real grpcio TraceService answering UNAVAILABLE once (retried after the backoff), then
    INVALID_ARGUMENT for the next batch (not retried)."""
    from concurrent import futures

    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

    answers = [grpc.StatusCode.UNAVAILABLE, None, grpc.StatusCode.INVALID_ARGUMENT]
    calls: list[Any] = []

    class TraceService(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request: ExportTraceServiceRequest, context: Any) -> Any:
            code = answers.pop(0)
            calls.append(code)
            if code is not None:
                context.abort(code, "not now")
            return trace_service_pb2.ExportTraceServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(TraceService(), server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        exporter = OtlpExporter(
            OtlpSettings.from_env("grpc", {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}"})
        )
        spans = every_kind_of_span()
        assert exporter.export(spans) is SpanExportResult.SUCCESS
        assert calls == [grpc.StatusCode.UNAVAILABLE, None]
        assert exporter.export(spans) is SpanExportResult.FAILURE
        assert calls[-1] is grpc.StatusCode.INVALID_ARGUMENT and answers == []
        exporter.shutdown()
    finally:
        server.stop(grace=None)

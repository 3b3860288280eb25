"""The request path's own span and traceparent code, against the real OpenTelemetry SDK.

Each test builds its own (non-global) SDK provider with an in-memory exporter and a middleware
bound to it, so Pilothouse's own-sampler path (ratio known) is exercised as well as the path
that asks a foreign provider's sampler.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased
from prometheus_client import generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from pilothouse.config.telemetry import TelemetryConfig
from pilothouse.metrics import Metrics
from pilothouse.telemetry import traceparent
from pilothouse.telemetry.middleware import TelemetryMiddleware
from pilothouse.telemetry.server_span import ServerSpan, ServerSpanStarter
from pilothouse.telemetry.spans import current_span_set
from tests.telemetry.test_middleware import _call

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


@pytest.mark.parametrize(
    ("header", "parsed"),
    [
        (f"00-{TRACE_ID}-{PARENT_ID}-01", (int(TRACE_ID, 16), int(PARENT_ID, 16), 1)),
        (f" 00-{TRACE_ID}-{PARENT_ID}-00 ", (int(TRACE_ID, 16), int(PARENT_ID, 16), 0)),
        (f"01-{TRACE_ID}-{PARENT_ID}-03-future", (int(TRACE_ID, 16), int(PARENT_ID, 16), 3)),
        (f"00-{TRACE_ID}-{PARENT_ID}-01-extra", None),  # version 00 has exactly four fields
        (f"ff-{TRACE_ID}-{PARENT_ID}-01", None),
        (f"00-{'0' * 32}-{PARENT_ID}-01", None),
        (f"00-{TRACE_ID}-{'0' * 16}-01", None),
        (f"00-{TRACE_ID.upper()}-{PARENT_ID}-01", None),
        (f"00-{TRACE_ID}-{PARENT_ID}", None),
        ("garbage", None),
    ],
)
def test_traceparent_parse(header: str, parsed: tuple[int, int, int] | None) -> None:
    assert traceparent.parse(header) == parsed


def test_traceparent_format_matches_the_otel_propagator() -> None:
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    context = SpanContext(int(TRACE_ID, 16), int(PARENT_ID, 16), False, TraceFlags(3))
    TraceContextTextMapPropagator().inject(carrier, trace.set_span_in_context(NonRecordingSpan(context)))
    assert traceparent.format_header(TRACE_ID, PARENT_ID, 3).decode() == carrier["traceparent"]


async def child(request: Request) -> PlainTextResponse:
    """A child span from the app, through a tracer of the same provider, as app code does."""
    tracer = request.app.state.provider.get_tracer("app")
    with tracer.start_as_current_span("child") as span:
        span.set_attribute("k", "v")
        current_span_set("set_by_app", "yes")  # lands on the child: it is the current span
    trace.get_current_span().set_attribute("on_server", 7)  # the server span, from app code
    return PlainTextResponse("ok")


async def boom(request: Request) -> PlainTextResponse:
    raise ValueError("broken")


def _setup(
    ratio: float | None, sampler: Any = None, metrics: Metrics | None = None
) -> tuple[Any, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=sampler) if sampler is not None else TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = Starlette(routes=[Route("/child/{n}", child), Route("/boom", boom)])
    app.state.provider = provider
    middleware = TelemetryMiddleware(
        app,
        metrics=metrics,
        telemetry=TelemetryConfig(access_log=False, correlation_header="X-Tx"),
        spans=ServerSpanStarter(provider.get_tracer("pilothouse"), ratio),  # type: ignore[arg-type]
    )
    return middleware, exporter


def _named(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    return {span.name: span for span in exporter.get_finished_spans()}


@pytest.mark.parametrize("ratio", [1.0, None])
async def test_server_span_nests_children_and_continues_the_caller(ratio: float | None) -> None:
    app, exporter = _setup(ratio)
    status, headers = await _call(
        app,
        "GET",
        "/child/3",
        [
            (b"traceparent", f"00-{TRACE_ID}-{PARENT_ID}-01".encode()),
            (b"tracestate", b"vendor=x"),
            (b"x-tx", b"TX-5"),
        ],
    )
    assert status == 200
    named = _named(exporter)
    server, kid = named["GET /child/{n}"], named["child"]
    assert isinstance(server, ServerSpan) and server.kind is trace.SpanKind.SERVER
    assert format(server.context.trace_id, "032x") == TRACE_ID
    assert server.parent is not None and format(server.parent.span_id, "016x") == PARENT_ID
    assert server.context.trace_state.get("vendor") == "x"
    assert kid.parent is not None and kid.parent.span_id == server.context.span_id
    assert kid.context.trace_id == server.context.trace_id
    assert dict(kid.attributes or {}) == {"k": "v", "set_by_app": "yes"}
    assert dict(server.attributes or {}) == {
        "http.request.method": "GET",
        "url.path": "/child/3",
        "url.scheme": "http",
        "correlation_id": "TX-5",
        "on_server": 7,
        "http.response.status_code": 200,
        "http.route": "/child/{n}",
    }
    assert server.start_time is not None and server.end_time is not None
    assert server.start_time <= kid.start_time <= kid.end_time <= server.end_time  # type: ignore[operator]
    assert headers[b"traceparent"] == traceparent.format_header(
        TRACE_ID, format(server.context.span_id, "016x"), server.context.trace_flags
    )
    assert server.resource.attributes["service.name"]  # the provider's resource
    assert '"name": "GET /child/{n}"' in server.to_json()  # what the console exporter prints


@pytest.mark.parametrize("ratio", [1.0, None])
async def test_errors_become_an_exception_event_and_status(ratio: float | None) -> None:
    app, exporter = _setup(ratio)
    with pytest.raises(ValueError):
        await _call(app, "GET", "/boom")
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code is trace.StatusCode.ERROR
    (event,) = span.events
    assert event.name == "exception"
    assert event.attributes is not None and event.attributes["exception.type"] == "ValueError"
    assert "broken" in str(event.attributes["exception.stacktrace"])


async def test_sampling_is_parent_based_with_a_ratio() -> None:
    never, exporter = _setup(0.0)
    # No parent: the ratio decides (0: nothing recorded, no traceparent returned, children
    # follow the unsampled parent).
    _, headers = await _call(never, "GET", "/child/1")
    assert exporter.get_finished_spans() == () and b"traceparent" not in headers
    # A sampled caller is followed whatever the ratio.
    await _call(never, "GET", "/child/1", [(b"traceparent", f"00-{TRACE_ID}-{PARENT_ID}-01".encode())])
    assert set(_named(exporter)) == {"GET /child/{n}", "child"}
    exporter.clear()
    always, exporter = _setup(1.0)
    await _call(always, "GET", "/child/1", [(b"traceparent", f"00-{TRACE_ID}-{PARENT_ID}-00".encode())])
    assert exporter.get_finished_spans() == ()


async def test_a_foreign_sampler_is_asked() -> None:
    app, exporter = _setup(None, sampler=ParentBased(ALWAYS_OFF))
    await _call(app, "GET", "/child/1")
    assert exporter.get_finished_spans() == ()
    await _call(app, "GET", "/child/1", [(b"traceparent", f"00-{TRACE_ID}-{PARENT_ID}-01".encode())])
    assert "GET /child/{n}" in _named(exporter)


async def test_baggage_is_propagated_to_the_app() -> None:
    seen: dict[str, object] = {}

    async def read(request: Request) -> PlainTextResponse:
        from opentelemetry import baggage

        seen.update(baggage.get_all())
        return PlainTextResponse("ok")

    app, exporter = _setup(1.0)
    app.app.router.routes.append(Route("/read", read))
    await _call(
        app,
        "GET",
        "/read",
        [(b"baggage", b"tenant=acme"), (b"traceparent", f"00-{TRACE_ID}-{PARENT_ID}-01".encode())],
    )
    assert seen == {"tenant": "acme"}
    (span,) = exporter.get_finished_spans()
    assert format(span.context.trace_id, "032x") == TRACE_ID


async def test_exemplar_is_the_sampled_trace_id() -> None:
    metrics = Metrics()
    app, exporter = _setup(1.0, metrics=metrics)
    await _call(app, "GET", "/child/1")
    (server,) = [s for s in exporter.get_finished_spans() if s.kind is trace.SpanKind.SERVER]
    from prometheus_client.openmetrics.exposition import generate_latest as openmetrics

    body = openmetrics(metrics.registry).decode()  # type: ignore[no-untyped-call]
    assert f'trace_id="{format(server.context.trace_id, "032x")}"' in body
    assert "http_server_request_duration_seconds_count" in generate_latest(metrics.registry).decode()


def test_span_api_after_end_and_invalid_values() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    spans = ServerSpanStarter(provider.get_tracer("pilothouse"), 1.0)  # type: ignore[arg-type]
    span = spans.start("GET", {}, None, None, None)
    assert isinstance(span, ServerSpan)
    span.set_attribute("bad", {"a": 1})  # not an OTLP attribute value: dropped
    span.set_attributes({"list": [1, 2]})
    span.set_status(trace.StatusCode.OK)
    span.set_status(trace.StatusCode.ERROR)  # OK is final, as in the SDK
    span.end()
    span.end()  # a second end is ignored
    span.set_attribute("late", 1)
    (done,) = exporter.get_finished_spans()
    assert dict(done.attributes or {}) == {"list": (1, 2)}
    assert done.status.status_code is trace.StatusCode.OK
    assert not span.is_recording()


async def test_exemplars_are_refreshed_at_most_once_per_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    from prometheus_client.openmetrics.exposition import generate_latest as openmetrics

    from pilothouse.telemetry import request_histogram

    metrics = Metrics()
    app, exporter = _setup(1.0, metrics=metrics)

    def trace_ids() -> list[str]:
        spans = [s for s in exporter.get_finished_spans() if s.kind is trace.SpanKind.SERVER]
        return [format(s.context.trace_id, "032x") for s in spans]

    def exemplars() -> str:
        return openmetrics(metrics.registry).decode()  # type: ignore[no-untyped-call]

    monkeypatch.setattr(request_histogram, "EXEMPLAR_INTERVAL", 0.5)
    await _call(app, "GET", "/child/1")
    await _call(app, "GET", "/child/2")  # same series and bucket, within the interval
    first, second = trace_ids()
    assert first in exemplars() and second not in exemplars()
    await asyncio.sleep(0.6)
    await _call(app, "GET", "/child/3")  # the interval passed: the bucket takes this one
    third = trace_ids()[-1]
    assert third in exemplars() and first not in exemplars()


async def test_generated_request_id_is_the_new_trace_id_else_random() -> None:
    app, exporter = _setup(1.0)
    _, headers = await _call(app, "GET", "/child/1")  # starts a trace: its id is the request id
    server = _named(exporter)["GET /child/{n}"]
    assert headers[b"x-request-id"].decode() == format(server.context.trace_id, "032x")

    incoming = [(b"traceparent", f"00-{TRACE_ID}-{PARENT_ID}-01".encode())]
    _, headers = await _call(app, "GET", "/child/2", incoming)
    generated = headers[b"x-request-id"].decode()  # continues a caller's trace: a fresh random id
    assert len(generated) == 32 and int(generated, 16) and generated != TRACE_ID

    _, headers = await _call(app, "GET", "/child/3", [(b"x-request-id", b"from-the-caller")])
    assert headers[b"x-request-id"] == b"from-the-caller"


class _Recorder:
    """A span processor overriding every hook (the SDK's base class makes them no-ops)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        self.calls.append(("start", span.name))

    def _on_ending(self, span: Any) -> None:
        self.calls.append(("ending", span.name))

    def on_end(self, span: Any) -> None:
        self.calls.append(("end", span.name))

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


async def test_processors_added_later_get_every_hook() -> None:
    from opentelemetry.sdk.trace import SpanProcessor

    app, exporter = _setup(1.0)
    await _call(app, "GET", "/child/1")
    recorder = type("Recorder", (_Recorder, SpanProcessor), {})()
    app._spans.processor.add_span_processor(recorder)  # the provider's multi-processor
    await _call(app, "GET", "/child/2")
    server = [call for call in recorder.calls if call[1] != "child"]
    assert server == [("start", "GET"), ("ending", "GET /child/{n}"), ("end", "GET /child/{n}")]
    assert len([s for s in exporter.get_finished_spans() if s.kind is trace.SpanKind.SERVER]) == 2


@pytest.mark.parametrize(
    ("ratio", "keep"), [(1.0, False), (0.5, False), (0.5, True), (0.0, True), (None, False)]
)
def test_a_new_traces_span_is_the_one_start_gives(ratio: float | None, keep: bool) -> None:
    """`start_new`, the middleware's common case (a request starting a trace) in fewer steps,
    gives what `start` gives from the same random state: the ids, flags and state, recording or
    not, provisional or not, and the processors' `on_start`."""
    import random

    from opentelemetry.sdk.trace import SpanProcessor

    provider = TracerProvider()
    started: list[Any] = []

    class Starts(SpanProcessor):
        def on_start(self, span: Any, parent_context: Any = None) -> None:
            started.append((span.get_span_context(), parent_context))

    provider.add_span_processor(Starts())
    starter = ServerSpanStarter(provider.get_tracer("t"), ratio, keep_errors_and_slow=keep)  # type: ignore[arg-type]
    for seed in range(64):
        random.seed(seed)
        old = starter.start("GET", {"http.request.method": "GET"}, None, None, None)
        random.seed(seed)
        new = starter.start_new("GET", {"http.request.method": "GET"})
        assert type(new) is type(old)
        assert new.get_span_context() == old.get_span_context()
        assert new.get_span_context().trace_flags == old.get_span_context().trace_flags
        if isinstance(old, ServerSpan):
            assert isinstance(new, ServerSpan)
            fields = ("trace_hex", "span_hex", "_provisional", "_parent", "_name", "_attributes")
            assert [getattr(new, f) for f in fields] == [getattr(old, f) for f in fields]
            # the same fields set (start_new builds the span without `__init__`), the same values
            # but the start time
            assert vars(new).keys() == vars(old).keys()
            assert {**vars(new), "_start_time": 0} == {**vars(old), "_start_time": 0}
            assert new.values is new._attributes and new._spans is starter
            assert started[-2:] == [(old.get_span_context(), None), (new.get_span_context(), None)]


def test_request_path_shortcuts_are_active_and_match_the_api() -> None:
    """The shortcuts (direct SpanContext tuple, contextvar attach) are taken with this SDK; a
    release that changed what they rely on would switch them off, and this test says so."""
    from opentelemetry import context
    from opentelemetry.trace import SpanContext, TraceFlags

    from pilothouse.telemetry import _otel_compat
    from pilothouse.telemetry.otel_context import OtelContext

    assert _otel_compat.span_context is _otel_compat._direct_span_context
    assert _otel_compat.READABLE_SPAN_LAYOUT and _otel_compat._PROCESSORS_OK
    assert _otel_compat._SUPPRESS_KEY is not None
    built = _otel_compat.span_context(5, 6, TraceFlags(1), None)
    assert built == SpanContext(5, 6, False, TraceFlags(1)) and built.is_valid

    otel = OtelContext()
    assert otel._context_var is not None
    span = trace.NonRecordingSpan(built)
    token = otel.attach_span(span)
    try:
        assert trace.get_current_span() is span
        assert context.get_current() == trace.set_span_in_context(span, context.Context())
    finally:
        otel.detach_span(token)
    assert trace.get_current_span() is not span


async def test_request_ids_stay_unique_without_a_sampled_random_trace() -> None:
    from opentelemetry.sdk.trace.id_generator import IdGenerator

    class Constant(IdGenerator):  # a test's deterministic generator: every trace id the same
        def generate_span_id(self) -> int:
            return 7

        def generate_trace_id(self) -> int:
            return 7

    exporter = InMemorySpanExporter()
    provider = TracerProvider(id_generator=Constant())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = TelemetryMiddleware(
        Starlette(routes=[Route("/child/{n}", child)], lifespan=None),
        metrics=None,
        telemetry=TelemetryConfig(access_log=False),
        spans=ServerSpanStarter(provider.get_tracer("pilothouse"), 1.0),  # type: ignore[arg-type]
    )
    app.app.state.provider = provider  # type: ignore[attr-defined]
    ids = {(await _call(app, "GET", "/child/1"))[1][b"x-request-id"] for _ in range(3)}
    assert len(ids) == 3  # random, not the (repeated) trace id

    unsampled, _ = _setup(0.0)
    ids = {(await _call(unsampled, "GET", "/child/1"))[1][b"x-request-id"] for _ in range(3)}
    assert len(ids) == 3 and all(len(i) == 32 for i in ids)


async def test_an_unsafe_incoming_request_id_is_replaced_by_the_trace_id() -> None:
    app, exporter = _setup(1.0)
    _, headers = await _call(app, "GET", "/child/1", [(b"x-request-id", b"bad\r\nvalue")])
    server = _named(exporter)["GET /child/{n}"]
    assert headers[b"x-request-id"].decode() == format(server.context.trace_id, "032x")


async def test_hooks_only_where_overridden_and_other_multi_processors() -> None:
    from unittest import mock

    from opentelemetry.sdk.trace import ConcurrentMultiSpanProcessor, SpanProcessor

    class EndOnly(SpanProcessor):
        def __init__(self) -> None:
            self.ended: list[str] = []

        def on_end(self, span: Any) -> None:
            self.ended.append(span.name)

    app, _ = _setup(1.0)
    end_only = EndOnly()
    app._spans.processor.add_span_processor(end_only)
    await _call(app, "GET", "/child/0")  # the hooks are rebuilt for the new processor
    with mock.patch.object(SpanProcessor, "on_start") as base_on_start:
        await _call(app, "GET", "/child/1")
    # the no-op hook is skipped for the server span (the SDK still calls it for the app's child)
    assert not [c for c in base_on_start.call_args_list if isinstance(c.args[0], ServerSpan)]
    assert base_on_start.call_count == 1
    assert end_only.ended[-1] == "GET /child/{n}"
    # a hook patched on the instance after the hooks were built still runs
    with mock.patch.object(end_only, "on_end") as patched:
        await _call(app, "GET", "/child/2")
    assert patched.call_args.args[0].name == "GET /child/{n}"

    concurrent = ConcurrentMultiSpanProcessor()
    exporter = InMemorySpanExporter()
    concurrent.add_span_processor(SimpleSpanProcessor(exporter))
    provider = TracerProvider(active_span_processor=concurrent, shutdown_on_exit=False)
    spans = ServerSpanStarter(provider.get_tracer("pilothouse"), 1.0)  # type: ignore[arg-type]
    assert spans.hooks().on_end == (concurrent,)  # called as it is
    app = TelemetryMiddleware(
        Starlette(routes=[Route("/child/{n}", child)]),
        metrics=None,
        telemetry=TelemetryConfig(access_log=False),
        spans=spans,
    )
    app.app.state.provider = provider  # type: ignore[attr-defined]
    await _call(app, "GET", "/child/3")
    assert "GET /child/{n}" in {span.name for span in exporter.get_finished_spans()}
    concurrent.shutdown()


def test_attaching_the_span_keeps_what_the_context_held() -> None:
    from opentelemetry import baggage, context

    from pilothouse.telemetry.otel_context import OtelContext

    otel = OtelContext()
    outer = context.attach(baggage.set_baggage("tenant", "t-1"))
    try:
        span = trace.NonRecordingSpan(trace.INVALID_SPAN_CONTEXT)
        token = otel.attach_span(span)
        assert trace.get_current_span() is span
        assert baggage.get_baggage("tenant") == "t-1"
        otel.detach_span(token)
        otel.detach_span(token)  # a second reset is logged, as the API's detach does, not raised
        assert baggage.get_baggage("tenant") == "t-1" and trace.get_current_span() is not span
    finally:
        context.detach(outer)


async def test_a_changed_readable_span_gets_processors_a_public_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fallback `_otel_compat` takes when `ReadableSpan`'s fields moved: processors get a
    `ReadableSpan` made with the public constructor, with the same content."""
    from pilothouse.telemetry import server_span

    monkeypatch.setattr(server_span, "READABLE_SPAN_LAYOUT", False)
    app, exporter = _setup(1.0)
    await _call(app, "GET", "/child/1", [(b"traceparent", f"00-{TRACE_ID}-{PARENT_ID}-01".encode())])
    server = _named(exporter)["GET /child/{n}"]
    assert type(server) is ReadableSpan
    assert server.attributes is not None and server.attributes["http.route"] == "/child/{n}"
    assert format(server.context.trace_id, "032x") == TRACE_ID and server.kind is trace.SpanKind.SERVER
    assert server.parent is not None and server.end_time is not None

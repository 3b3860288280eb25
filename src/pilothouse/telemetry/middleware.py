"""One pure-ASGI middleware for everything Pilothouse does per HTTP request.

In one pass, with no per-request allocation it can avoid: `http_server_active_requests`, the
duration histogram (children cached per label tuple, exemplar = trace id when sampled), the
request id (honoured from the header or generated, returned in the response), one server span
named `METHOD /route` continuing an incoming W3C `traceparent` (a `ServerSpan`: the SDK
pipeline's ids, sampler and processors without the SDK's per-span objects), the correlation
value, and the access log line (queued, written in batches). Every part is skipped entirely
when switched off, so "metrics only" costs one gauge inc/dec and one histogram observe. It sits
outside the runtime's in-flight middleware, so the 503 a request cut at the drain deadline gets
is recorded like any response.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable
from time import perf_counter
from typing import TYPE_CHECKING, Any

from pilothouse.asgi import ASGIApp, Message, Receive, Scope, Send, direct_call
from pilothouse.catalog import http_server as http_metrics
from pilothouse.config.telemetry import TelemetryConfig
from pilothouse.metrics import Metrics
from pilothouse.runtime.inflight import RESPONSE_STARTED, InFlightMiddleware
from pilothouse.runtime.multiprocess import multiprocess_enabled
from pilothouse.runtime.wire_headers import WIRE_HEADERS
from pilothouse.telemetry import request_ids
from pilothouse.telemetry.access import AccessLog
from pilothouse.telemetry.context import RequestContext, current_request
from pilothouse.telemetry.otel_context import OtelContext
from pilothouse.telemetry.request_histogram import ChildSeries, Series
from pilothouse.telemetry.request_storage import active_requests, request_histogram
from pilothouse.telemetry.routes import route_template
from pilothouse.telemetry.traceparent import format_header

if TYPE_CHECKING:
    from pilothouse.telemetry.server_span import ServerSpanStarter

log = logging.getLogger("pilothouse.telemetry")

# What an incoming request id may look like; anything else is replaced by a generated one
# (it is echoed into logs and response headers, so no control characters or huge values).
_SAFE_REQUEST_ID = re.compile(rb"[\w.:@/+=-]{1,128}")

# FastAPI (0.142+) starts a SERVER span of its own for every request once a global tracer
# provider exists, from the request headers rather than the current span: a second span in a
# second trace, current while the handler runs (so its logs and child spans went there). FastAPI
# skips its request telemetry when the scope already carries this key (its marker for "an outer
# FastAPI app handles this request"; an excluded request gets None), so a request Pilothouse
# traces gets None: one server span, Pilothouse's. `make test-latest` runs the test that proves
# it against the newest FastAPI (tests/telemetry/test_fastapi.py).
FASTAPI_TELEMETRY = "fastapi.telemetry"


class TelemetryMiddleware:
    """Wraps the user's app; see the module docstring for what it records."""

    __slots__ = (
        "_access",
        "_active",
        "_body_sizes",
        "_correlation_attr",
        "_correlation_key",
        "_durations",
        "_exemplars",
        "_histogram",
        "_inflight",
        "_inner",
        "_only_header",
        "_otel",
        "_read_headers",
        "_request_id_key",
        "_request_id_line",
        "_size_series",
        "_spans",
        "_trace_ids_unique",
        "app",
    )

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics | None,
        telemetry: TelemetryConfig,
        spans: ServerSpanStarter | None = None,
    ) -> None:
        self.app = app
        # Directly around the runtime's in-flight layer (as `serve` builds it), this middleware
        # does that layer's counting itself and calls the app inside: one call layer less per
        # request. The layer keeps its counts and answers a request cut at the drain deadline
        # (`InFlightMiddleware.cut`), so `runtime.inflight`, drops and the 503 are unchanged.
        self._inflight = app if isinstance(app, InFlightMiddleware) and app.outer_tracks_start else None
        self._inner = direct_call(self._inflight.app if self._inflight is not None else app)
        self._histogram = (
            request_histogram(metrics, http_metrics.HTTP_SERVER_REQUEST_DURATION) if metrics else None
        )
        self._body_sizes = (
            (
                request_histogram(metrics, http_metrics.HTTP_SERVER_REQUEST_BODY_SIZE),
                request_histogram(metrics, http_metrics.HTTP_SERVER_RESPONSE_BODY_SIZE),
            )
            if metrics and telemetry.body_size_metrics
            else None
        )
        self._size_series: dict[tuple[str, str, int], tuple[Series | ChildSeries, Series | ChildSeries]] = {}
        self._active = active_requests(metrics) if metrics else None
        self._durations: dict[tuple[str, str, int], Series | ChildSeries] = {}
        self._spans = spans
        self._otel = OtelContext() if spans is not None else None
        # A new trace's id doubles as the request id only when it is random (a custom id
        # generator, e.g. a test's, may repeat ids).
        self._trace_ids_unique = spans is not None and spans.random_ids
        # Exemplars exist only in single-process storage (prometheus_client multiprocess mode
        # drops them), so skip building them there.
        self._exemplars = spans is not None and not multiprocess_enabled()
        self._request_id_key = telemetry.request_id_header.lower().encode() if telemetry.request_id else None
        self._request_id_line = (self._request_id_key or b"") + b": "
        header = telemetry.correlation_header
        self._correlation_key = header.lower().encode() if header else None
        self._correlation_attr = telemetry.correlation_attribute
        # The request headers the middleware reads: a set test skips every other header.
        trace_headers = (b"traceparent", b"tracestate", b"baggage") if spans is not None else ()
        self._read_headers = frozenset(
            key for key in (self._request_id_key, self._correlation_key, *trace_headers) if key
        )
        # Only one of them (the default: the request id's): compared directly, no set's hashing
        # (-170 instructions a header the request has; docs/performance.md, "Eighth pass").
        self._only_header = next(iter(self._read_headers)) if len(self._read_headers) == 1 else None
        # The bound method, not the instance: calling an instance goes through `__call__`'s C
        # slot, a frame of its own outside the interpreter's inlined calls (-1.9k a request in
        # the app-stack loop of docs/performance.md, "Fifth pass").
        self._access = AccessLog().write if telemetry.access_log else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = perf_counter()
        method: str = scope["method"]
        if method not in http_metrics.STANDARD_METHODS:
            method = http_metrics.OTHER_METHOD
        entry_root_path: str = scope.get("root_path", "")

        request_id: bytes | None = None
        correlation: bytes | None = None
        parent: bytes | None = None
        trace_state: bytes | None = None
        baggage: bytes | None = None
        if (only := self._only_header) is not None:
            for key, value in scope["headers"]:
                if key == only:
                    if only == self._request_id_key:
                        request_id = value
                    else:
                        correlation = value
        elif read := self._read_headers:
            rid_key, corr_key = self._request_id_key, self._correlation_key
            for key, value in scope["headers"]:
                if key not in read:
                    continue
                if key == rid_key:
                    request_id = value
                elif key == corr_key:
                    correlation = value
                elif key == b"traceparent":
                    parent = value
                elif key == b"tracestate":
                    trace_state = value if trace_state is None else trace_state + b"," + value
                elif key == b"baggage":
                    baggage = value
        span: Any = None
        otel_token: Any = None
        ids: tuple[str, str] | None = None
        exemplar: str | None = None
        traceparent: bytes | None = None
        new_trace: str | None = None  # the id of a trace this request starts
        if (otel := self._otel) is not None:
            scope[FASTAPI_TELEMETRY] = None
            if parent is None and baggage is None:  # the common case: a new trace
                span = self._spans.start_new(  # type: ignore[union-attr]
                    method,
                    {"http.request.method": method, "url.path": scope["path"], "url.scheme": scope["scheme"]},
                )
                otel_token = otel.attach_span(span)
            else:
                span, otel_token = otel.start_continued(
                    self._spans,  # type: ignore[arg-type]
                    method,
                    scope,
                    parent,
                    trace_state,
                    baggage,
                )
            if type(span) is otel.server_span:  # recording (else a NonRecordingSpan)
                trace_hex = span.trace_hex
                ids = (trace_hex, span.span_hex)
                # The context's flags read as the tuple item they are: no method and property call.
                own: Any = span._context
                flags = own[3] if otel.context_is_tuple else span.get_span_context().trace_flags
                traceparent = format_header(trace_hex, span.span_hex, flags)
                if flags & 1 and self._exemplars:
                    exemplar = trace_hex
                if span._parent is None and self._trace_ids_unique:  # (`parent`: a property call)
                    new_trace = trace_hex
            else:
                span_context = span.get_span_context()
                ids = self._spans.hex_ids(span_context.trace_id, span_context.span_id)  # type: ignore[union-attr]

        # The response headers: as complete lines for the connection when it takes them (h11
        # under `serve`: no second check by h11, see `runtime.wire_headers`), else as pairs
        # appended to the response start.
        wire: Any = scope.get(WIRE_HEADERS)
        lines = b""
        response_headers: tuple[tuple[bytes, bytes], ...] = ()  # (the empty one: no allocation)
        context: RequestContext | None = None
        rid_text: str | None = None
        if rid_key := self._request_id_key:
            if request_id is None or not _SAFE_REQUEST_ID.fullmatch(request_id):
                # A request that starts a trace takes its id (unique, and it leads from a log
                # line straight to the trace); otherwise a random one. Not a secret either way.
                if new_trace is not None:
                    rid_text, request_id = new_trace, new_trace.encode()
                else:
                    try:
                        rid_text, request_id = request_ids.take()
                    except IndexError:
                        rid_text, request_id = request_ids.refill()
            if wire is not None:
                lines = self._request_id_line + request_id + b"\r\n"
            else:
                response_headers = ((rid_key, request_id),)
        if traceparent is not None:
            if wire is not None:
                lines += b"traceparent: " + traceparent + b"\r\n"
            else:
                response_headers += ((b"traceparent", traceparent),)
        if request_id is not None or correlation is not None:
            context = RequestContext()  # `request_context`, without a call
            context.request_id = rid_text or (request_id.decode() if request_id is not None else None)
            context.correlation = correlation.decode("latin-1") if correlation is not None else None
            context.subject = None
            if context.correlation is not None and otel is not None and type(span) is otel.server_span:
                span.values[self._correlation_attr] = context.correlation
        log_token = current_request.set(context) if context is not None else None

        status = 500  # until the app starts a response; an app that raises first sent none

        # A plain function returning the server's awaitable (what ASGI asks of `send`: a callable
        # whose result is awaited), not a coroutine function: no coroutine of its own a message.
        def send_wrapper(message: Message) -> Awaitable[None]:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                scope[RESPONSE_STARTED] = True  # read by the in-flight middleware inside
                if lines:
                    wire(lines)
                elif response_headers:
                    message["headers"] = [*message.get("headers", ()), *response_headers]
            return send(message)

        app_receive: Receive = receive
        app_send: Send = send_wrapper
        bodies: _BodyBytes | None = None
        if self._body_sizes is not None:
            bodies = _BodyBytes(receive, send_wrapper)
            app_receive, app_send = bodies.receive, bodies.send

        active = self._active[method] if self._active is not None else None
        if active is not None:
            active.value += 1
        if (inflight := self._inflight) is not None:
            inflight.inflight += 1
        error: BaseException | None = None
        try:
            await self._inner(scope, app_receive, app_send)
        except BaseException as exc:
            if (
                inflight is None
                or not isinstance(exc, asyncio.CancelledError)
                or not await inflight.cut(scope, app_send, False)
            ):
                error = exc
                raise
        finally:
            if inflight is not None:
                inflight.inflight -= 1
            if active is not None:
                active.value -= 1
            duration = perf_counter() - start
            route = route_template(scope, entry_root_path)
            if (access := self._access) is not None:
                access(scope["method"], scope["path"], route, status, duration, context, ids)
            if otel is not None:
                otel.end(span, otel_token, method, route, status, error)
            if (histogram := self._histogram) is not None:
                key = (method, route, status)
                series = self._durations.get(key)
                if series is None:
                    series = self._durations[key] = histogram.labels(method, route, str(status))
                if exemplar is not None:
                    series.observe_traced(duration, exemplar, start + duration)
                else:
                    series.observe(duration)
                if bodies is not None:
                    self._observe_sizes(method, route, status, bodies.received, bodies.sent)
            if log_token is not None:
                current_request.reset(log_token)

    def _observe_sizes(self, method: str, route: str, status: int, received: int, sent: int) -> None:
        key = (method, route, status)
        pair = self._size_series.get(key)
        if pair is None:
            labels = (method, route, str(status))
            requests, responses = self._body_sizes  # type: ignore[misc]
            pair = self._size_series[key] = (requests.labels(*labels), responses.labels(*labels))
        pair[0].observe(received)
        pair[1].observe(sent)


class _BodyBytes:
    """Counts the body bytes the app reads and sends (`body_size_metrics`), wrapping `receive`
    and `send` only when that is on."""

    __slots__ = ("_receive", "_send", "received", "sent")

    def __init__(self, receive: Receive, send: Send) -> None:
        self._receive = receive
        self._send = send
        self.received = 0
        self.sent = 0

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
        return message

    async def send(self, message: Message) -> None:
        await self._send(message)  # counted once sent: a chunk whose send failed is not
        if message["type"] == "http.response.body":
            self.sent += len(message.get("body", b""))

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

import re
from bisect import bisect_left
from random import getrandbits
from time import perf_counter
from typing import TYPE_CHECKING, Any

from pilothouse.catalog import http as http_metrics
from pilothouse.config.telemetry import TelemetryConfig
from pilothouse.runtime.asgi import ASGIApp, Message, Receive, Scope, Send
from pilothouse.runtime.inflight import RESPONSE_STARTED
from pilothouse.runtime.metrics import Metrics
from pilothouse.runtime.multiprocess import multiprocess_enabled
from pilothouse.telemetry.access import AccessLog
from pilothouse.telemetry.context import RequestContext, current_request
from pilothouse.telemetry.routes import route_template
from pilothouse.telemetry.traceparent import format_header

if TYPE_CHECKING:
    from pilothouse.telemetry.server_span import ServerSpans

# What an incoming request id may look like; anything else is replaced by a generated one
# (it is echoed into logs and response headers, so no control characters or huge values).
_SAFE_REQUEST_ID = re.compile(rb"[\w.:@/+=-]{1,128}")


class TelemetryMiddleware:
    """Wraps the user's app; see the module docstring for what it records."""

    __slots__ = (
        "_access",
        "_active",
        "_correlation_attr",
        "_correlation_key",
        "_durations",
        "_exemplars",
        "_histogram",
        "_otel",
        "_request_id_key",
        "_scan_headers",
        "_spans",
        "app",
    )

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics | None,
        telemetry: TelemetryConfig,
        spans: ServerSpans | None = None,
    ) -> None:
        self.app = app
        self._histogram = metrics.get(http_metrics.HTTP_SERVER_REQUEST_DURATION) if metrics else None
        self._active = _active_requests(metrics) if metrics else None
        self._durations: dict[tuple[str, str, int], _Series] = {}
        self._spans = spans
        self._otel = _Otel() if spans is not None else None
        # Exemplars exist only in single-process storage (prometheus_client multiprocess mode
        # drops them), so skip building them there.
        self._exemplars = spans is not None and not multiprocess_enabled()
        self._request_id_key = telemetry.request_id_header.lower().encode() if telemetry.request_id else None
        header = telemetry.correlation_header
        self._correlation_key = header.lower().encode() if header else None
        self._correlation_attr = telemetry.correlation_attribute
        self._scan_headers = bool(self._request_id_key or self._correlation_key or spans)
        self._access = AccessLog() if telemetry.access_log else None

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
        if self._scan_headers:
            rid_key, corr_key = self._request_id_key, self._correlation_key
            for key, value in scope["headers"]:
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
        response_headers: list[tuple[bytes, bytes]] = []
        context: RequestContext | None = None
        rid_text: str | None = None
        if rid_key := self._request_id_key:
            if request_id is None or not _SAFE_REQUEST_ID.fullmatch(request_id):
                rid_text = f"{getrandbits(128):032x}"  # unique, not a secret
                request_id = rid_text.encode()
            response_headers.append((rid_key, request_id))
        if request_id is not None or correlation is not None:
            context = RequestContext(
                rid_text or (request_id.decode() if request_id is not None else None),
                correlation.decode("latin-1") if correlation is not None else None,
            )
        log_token = current_request.set(context) if context is not None else None

        span: Any = None
        otel_token: Any = None
        ids: tuple[str, str] | None = None
        exemplar: str | None = None
        if (otel := self._otel) is not None:
            if parent is None and baggage is None:  # the common case: a new trace
                span = self._spans.start(  # type: ignore[union-attr]
                    method,
                    {"http.request.method": method, "url.path": scope["path"], "url.scheme": scope["scheme"]},
                    None,
                    None,
                    None,
                )
                otel_token = otel.attach(otel.set_span_in_context(span))
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
                ids = (span.trace_hex, span.span_hex)
                if context is not None and context.correlation is not None:
                    span.values[self._correlation_attr] = context.correlation
                flags = span.get_span_context().trace_flags
                response_headers.append((b"traceparent", format_header(span.trace_hex, span.span_hex, flags)))
                if flags & 1 and self._exemplars:
                    exemplar = span.trace_hex
            else:
                span_context = span.get_span_context()
                ids = (format(span_context.trace_id, "032x"), format(span_context.span_id, "016x"))

        status = 500  # until the app starts a response; an app that raises first sent none

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                scope[RESPONSE_STARTED] = True  # read by the in-flight middleware inside
                if response_headers:
                    message["headers"] = [*message.get("headers", ()), *response_headers]
            await send(message)

        active = self._active[method] if self._active is not None else None
        if active is not None:
            active.inc()
        error: BaseException | None = None
        try:
            await self.app(scope, receive, send_wrapper)
        except BaseException as exc:
            error = exc
            raise
        finally:
            if active is not None:
                active.dec()
            duration = perf_counter() - start
            route = route_template(scope, entry_root_path)
            if self._access is not None:
                self._access(scope["method"], scope["path"], route, status, duration, context, ids)
            if otel is not None:
                otel.end(span, otel_token, method, route, status, error)
            if self._histogram is not None:
                self._observe(method, route, status, duration, exemplar)
            if log_token is not None:
                current_request.reset(log_token)

    def _observe(self, method: str, route: str, status: int, duration: float, trace_hex: str | None) -> None:
        key = (method, route, status)
        series = self._durations.get(key)
        if series is None:
            child = self._histogram.labels(method, route, str(status))  # type: ignore[union-attr]
            series = self._durations[key] = _Series(child)
        if trace_hex is not None:
            series.observe_traced(duration, trace_hex)
        else:
            series.child.observe(duration)


_BOUNDS = (*http_metrics.HTTP_SERVER_REQUEST_DURATION.buckets, float("inf"))
EXEMPLAR_INTERVAL = 0.1
"""Seconds: each bucket of a series takes at most one new exemplar per interval. Prometheus keeps
only a bucket's latest exemplar per scrape anyway, and attaching one (label validation, a tuple,
a clock read, a lock) costs more than the observation itself."""


class _Series:
    """One duration series (a histogram child) and when each of its buckets may next take an
    exemplar."""

    __slots__ = ("child", "next_exemplar")

    def __init__(self, child: Any) -> None:
        self.child = child
        self.next_exemplar = [0.0] * len(_BOUNDS)

    def observe_traced(self, duration: float, trace_hex: str) -> None:
        bucket = bisect_left(_BOUNDS, duration)  # the bucket prometheus_client counts it in
        now = perf_counter()
        if now >= self.next_exemplar[bucket]:
            self.next_exemplar[bucket] = now + EXEMPLAR_INTERVAL
            self.child.observe(duration, {"trace_id": trace_hex})
        else:
            self.child.observe(duration)


class _InProgress:
    """Requests in progress for one method as a plain int, read when scraped: a Gauge's
    inc/dec each take a lock and two checks, twice per request."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def inc(self) -> None:
        self.value += 1

    def dec(self) -> None:
        self.value -= 1

    def get(self) -> float:
        return self.value


def _active_requests(metrics: Metrics) -> dict[str, Any]:
    """`http_server_active_requests` per method: gauge children in multiprocess storage (each
    worker writes its value for the supervisor's sum), ints read at scrape time otherwise."""
    gauge = metrics.get(http_metrics.HTTP_SERVER_ACTIVE_REQUESTS)
    methods = (*http_metrics.STANDARD_METHODS, http_metrics.OTHER_METHOD)
    if multiprocess_enabled():
        return {method: gauge.labels(method) for method in methods}
    active: dict[str, Any] = {}
    for method in methods:
        counter = active[method] = _InProgress()
        gauge.labels(method).set_function(counter.get)
    return active


class _Otel:
    """The OpenTelemetry calls of the middleware, imported once (the SDK is optional)."""

    __slots__ = ("attach", "detach", "extract", "server_span", "set_span_in_context", "status_error")

    def __init__(self) -> None:
        from opentelemetry import context, propagate, trace
        from opentelemetry.trace import Status, StatusCode

        from pilothouse.telemetry.server_span import ServerSpan

        self.attach = context.attach
        self.detach = context.detach
        self.extract = propagate.extract
        self.server_span = ServerSpan
        self.set_span_in_context = trace.set_span_in_context
        self.status_error: Any = lambda description: Status(StatusCode.ERROR, description)

    def start_continued(
        self,
        spans: ServerSpans,
        method: str,
        scope: Scope,
        parent: bytes | None,
        trace_state: bytes | None,
        baggage: bytes | None,
    ) -> tuple[Any, object]:
        """The span of a request carrying trace headers, made current: (span, token to detach)."""
        header = parent.decode("latin-1") if parent is not None else None
        state = trace_state.decode("latin-1") if trace_state is not None else None
        base = None
        if baggage is not None:  # the global propagator reads baggage (and the trace headers)
            carrier = {"baggage": baggage.decode("latin-1")}
            if header is not None:
                carrier["traceparent"] = header
            if state is not None:
                carrier["tracestate"] = state
            base = self.extract(carrier)
        attributes = {"http.request.method": method, "url.path": scope["path"], "url.scheme": scope["scheme"]}
        span = spans.start(method, attributes, header, state, base)
        return span, self.attach(self.set_span_in_context(span, base))

    def end(
        self, span: Any, token: Any, method: str, route: str, status: int, error: BaseException | None
    ) -> None:
        if type(span) is self.server_span and span.is_recording():
            values = span.values
            values["http.response.status_code"] = status
            if route != http_metrics.UNMATCHED_ROUTE:
                values["http.route"] = route
                span.update_name(f"{method} {route}")
            if error is not None:
                span.record_exception(error)
                span.set_status(self.status_error(type(error).__name__))
            elif status >= 500:
                span.set_status(self.status_error(str(status)))
            span.end()
        self.detach(token)

"""One pure-ASGI middleware for everything Pilothouse does per HTTP request.

In one pass, with no per-request allocation it can avoid: `http_server_active_requests`, the
duration histogram
(children cached per label tuple, exemplar = trace id when sampled), the request id (honoured
from the header or generated, returned in the response), one server span named
`METHOD /route` continuing an incoming W3C `traceparent`, the correlation value, and the
access log line. Every part is skipped entirely when switched off, so "metrics only" costs
one gauge inc/dec and one histogram observe. It sits outside the runtime's in-flight
middleware, so the 503 a request cut at the drain deadline gets is recorded like any response.
"""

from __future__ import annotations

import logging
import re
from random import getrandbits
from time import perf_counter
from typing import TYPE_CHECKING, Any

from pilothouse.catalog import http as http_metrics
from pilothouse.config.telemetry import TelemetryConfig
from pilothouse.runtime.asgi import ASGIApp, Message, Receive, Scope, Send
from pilothouse.runtime.metrics import Metrics
from pilothouse.telemetry.context import RequestContext, current_request
from pilothouse.telemetry.logs import ACCESS_LOGGER
from pilothouse.telemetry.multiprocess import multiprocess_enabled
from pilothouse.telemetry.routes import route_template

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

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
        "_tracer",
        "app",
    )

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics | None,
        telemetry: TelemetryConfig,
        tracer: Tracer | None = None,
    ) -> None:
        self.app = app
        self._histogram = metrics.get(http_metrics.HTTP_SERVER_REQUEST_DURATION) if metrics else None
        gauge = metrics.get(http_metrics.HTTP_SERVER_ACTIVE_REQUESTS) if metrics else None
        self._active: dict[str, Any] | None = (
            {m: gauge.labels(m) for m in (*http_metrics.STANDARD_METHODS, http_metrics.OTHER_METHOD)}
            if gauge is not None
            else None
        )
        self._durations: dict[tuple[str, str, int], Any] = {}
        self._tracer = tracer
        self._otel = _Otel() if tracer is not None else None
        # Exemplars exist only in single-process storage (prometheus_client multiprocess mode
        # drops them), so skip building them there.
        self._exemplars = tracer is not None and not multiprocess_enabled()
        self._request_id_key = telemetry.request_id_header.lower().encode() if telemetry.request_id else None
        header = telemetry.correlation_header
        self._correlation_key = header.lower().encode() if header else None
        self._correlation_attr = telemetry.correlation_attribute
        self._scan_headers = bool(self._request_id_key or self._correlation_key or tracer)
        access = logging.getLogger(ACCESS_LOGGER)
        self._access = access if telemetry.access_log else None

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
        trace_headers: dict[str, str] | None = None
        if self._scan_headers:
            rid_key, corr_key = self._request_id_key, self._correlation_key
            for key, value in scope["headers"]:
                if key == rid_key:
                    request_id = value
                elif key == corr_key:
                    correlation = value
                elif key == b"traceparent" or key == b"tracestate":
                    if trace_headers is None:
                        trace_headers = {}
                    trace_headers[key.decode()] = value.decode("latin-1")
        response_headers: list[tuple[bytes, bytes]] = []
        context: RequestContext | None = None
        if rid_key := self._request_id_key:
            if request_id is None or not _SAFE_REQUEST_ID.fullmatch(request_id):
                request_id = f"{getrandbits(128):032x}".encode()  # unique, not a secret
            response_headers.append((rid_key, request_id))
        if request_id is not None or correlation is not None:
            context = RequestContext(
                request_id.decode() if request_id is not None else None,
                correlation.decode("latin-1") if correlation is not None else None,
            )
        log_token = current_request.set(context) if context is not None else None

        span = otel_token = None
        if self._otel is not None and self._tracer is not None:
            span, otel_token = self._otel.start(self._tracer, method, scope, trace_headers)
            if context is not None and context.correlation is not None:
                span.set_attribute(self._correlation_attr, context.correlation)
            if span.is_recording():
                response_headers.append((b"traceparent", self._otel.traceparent(span)))

        status = 500  # until the app starts a response; an app that raises first sent none

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
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
            if self._access is not None:  # inside the span, so the line carries its trace id
                self._access_line(scope, route, status, duration)
            if span is not None:
                self._otel.end(span, otel_token, method, route, status, error)  # type: ignore[union-attr]
            if self._histogram is not None:
                self._observe(method, route, status, duration, span)
            if log_token is not None:
                current_request.reset(log_token)

    def _access_line(self, scope: Scope, route: str, status: int, duration: float) -> None:
        """One INFO record on `pilothouse.access`, built directly: `Logger.info` would also walk
        the stack for the caller's file and line, which an access line does not need."""
        access = self._access
        if access is None or not access.isEnabledFor(logging.INFO):
            return
        ms = duration * 1000
        message = f"{scope['method']} {scope['path']} {status} {ms:.1f}ms"
        record = logging.LogRecord(ACCESS_LOGGER, logging.INFO, "", 0, message, None, None)
        record.http_route = route
        record.status = status
        record.duration_ms = round(ms, 3)
        access.handle(record)

    def _observe(self, method: str, route: str, status: int, duration: float, span: Any) -> None:
        key = (method, route, status)
        child = self._durations.get(key)
        if child is None:
            child = self._durations[key] = self._histogram.labels(method, route, str(status))  # type: ignore[union-attr]
        if self._exemplars and span is not None:
            span_context = span.get_span_context()
            if span_context.trace_flags.sampled:
                child.observe(duration, {"trace_id": format(span_context.trace_id, "032x")})
                return
        child.observe(duration)


class _Otel:
    """The OpenTelemetry calls of the middleware, imported once (the SDK is optional)."""

    __slots__ = ("attach", "detach", "extract", "kind", "set_span_in_context", "status_error")

    def __init__(self) -> None:
        from opentelemetry import context, propagate, trace
        from opentelemetry.trace import Status, StatusCode

        self.attach = context.attach
        self.detach = context.detach
        self.extract = propagate.extract
        self.kind = trace.SpanKind.SERVER
        self.set_span_in_context = trace.set_span_in_context
        self.status_error: Any = lambda description: Status(StatusCode.ERROR, description)

    def start(
        self, tracer: Tracer, method: str, scope: Scope, trace_headers: dict[str, str] | None
    ) -> tuple[Any, Any]:
        parent = self.extract(trace_headers) if trace_headers is not None else None
        span = tracer.start_span(
            method,
            parent,
            self.kind,
            {"http.request.method": method, "url.path": scope["path"], "url.scheme": scope["scheme"]},
        )
        return span, self.attach(self.set_span_in_context(span, parent))

    @staticmethod
    def traceparent(span: Any) -> bytes:
        ctx = span.get_span_context()
        return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}".encode()

    def end(
        self, span: Any, token: Any, method: str, route: str, status: int, error: BaseException | None
    ) -> None:
        if span.is_recording():
            if route != http_metrics.UNMATCHED_ROUTE:
                span.set_attributes({"http.response.status_code": status, "http.route": route})
                span.update_name(f"{method} {route}")
            else:
                span.set_attribute("http.response.status_code", status)
            if error is not None:
                span.record_exception(error)
                span.set_status(self.status_error(type(error).__name__))
            elif status >= 500:
                span.set_status(self.status_error(str(status)))
        span.end()
        self.detach(token)

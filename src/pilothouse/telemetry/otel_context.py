"""The OpenTelemetry context plumbing of the request middleware: the server span made current
for the app (and detached after), a continued trace's parent and baggage, the span's end with
the response's route, status and error."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from pilothouse.asgi import Scope
from pilothouse.catalog import http_server as http_metrics

if TYPE_CHECKING:
    from pilothouse.telemetry.server_span import ServerSpanStarter

log = logging.getLogger("pilothouse.telemetry")


class OtelContext:
    """The OpenTelemetry calls of the middleware, imported once (the SDK is optional): making the
    server span current and ending it, continuing an incoming trace (with baggage)."""

    __slots__ = (
        "_context_var",
        "_span_key",
        "attach",
        "context_class",
        "context_is_tuple",
        "detach",
        "extract",
        "server_span",
        "set_span_in_context",
        "status_error",
    )

    def __init__(self) -> None:
        from opentelemetry import context, propagate, trace
        from opentelemetry.trace import Status, StatusCode

        from pilothouse.telemetry._otel_compat import SPAN_CONTEXT_IS_TUPLE, runtime_context_var
        from pilothouse.telemetry.server_span import ServerSpan

        self.attach = context.attach
        self.detach = context.detach
        self.extract = propagate.extract
        self.server_span = ServerSpan
        self.set_span_in_context = trace.set_span_in_context
        self.status_error: Any = lambda description: Status(StatusCode.ERROR, description)
        self.context_class = context.Context
        # `attach(set_span_in_context(span))` is four calls deep; with the SDK's default
        # (contextvars) runtime context the same is one copy and one ContextVar.set. The span
        # key is the one `set_span_in_context` uses; any other runtime context takes the API.
        (self._span_key,) = trace.set_span_in_context(trace.INVALID_SPAN, context.Context()).keys()
        self._context_var = runtime_context_var
        # A server span's `SpanContext` is the tuple of its fields: its flags are item 3.
        self.context_is_tuple = SPAN_CONTEXT_IS_TUPLE

    def attach_span(self, span: Any) -> object:
        """Make `span` the current span (as `attach(set_span_in_context(span))`); a token to
        `detach_span`."""
        var = self._context_var
        if var is None:
            return self.attach(self.set_span_in_context(span))
        return var.set(self.context_class({**var.get(), self._span_key: span}))

    def detach_span(self, token: Any) -> None:
        if self._context_var is None:
            self.detach(token)
            return
        try:
            self._context_var.reset(token)
        except Exception:  # as `detach`: a token from another context is logged, not raised
            log.exception("Failed to detach context")

    def start_continued(
        self,
        spans: ServerSpanStarter,
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
        if base is None:
            return span, self.attach_span(span)
        return span, self.attach(self.set_span_in_context(span, base))

    def end(
        self, span: Any, token: Any, method: str, route: str, status: int, error: BaseException | None
    ) -> None:
        # A ServerSpan is recording until it ends; app code may have ended it already.
        if type(span) is self.server_span and span._end_time is None:
            values = span.values
            values["http.response.status_code"] = status
            if route != http_metrics.UNMATCHED_ROUTE:
                values["http.route"] = route
                span._name = f"{method} {route}"  # what `update_name` does on a recording span
            if error is not None:
                span.record_exception(error)
                span.set_status(self.status_error(type(error).__name__))
            elif status >= 500:
                span.set_status(self.status_error(str(status)))
            span.end()
        var = self._context_var  # `detach_span(token)`, without the call
        if var is None:
            self.detach(token)
            return
        try:
            var.reset(token)
        except Exception:  # as `detach`: a token from another context is logged, not raised
            log.exception("Failed to detach context")

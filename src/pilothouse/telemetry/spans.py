"""Child spans for the helpers, through the OpenTelemetry API when it is installed.

Without `opentelemetry-api` (it is an optional extra) the helpers still record metrics and
`start_span` returns None. With the API but no provider installed, spans are no-ops.
"""

from __future__ import annotations

import traceback
from itertools import takewhile
from typing import Any

from pilothouse.redaction import redact
from pilothouse.telemetry.traceparent import format_header

try:
    from opentelemetry import context as _context
    from opentelemetry import trace as _trace
except ImportError:  # pragma: no cover - exercised only without the traces extra
    _trace = None  # type: ignore[assignment]


class ActiveSpan:
    """A span made current until `close()`; records the exception it closes with."""

    __slots__ = ("_span", "_token")

    def __init__(self, span: Any, token: object) -> None:
        self._span = span
        self._token = token

    def set_attribute(self, key: str, value: str | int | float | bool) -> None:
        self._span.set_attribute(key, value)

    def fail(self, description: str) -> None:
        """ERROR status without an exception (a client call answered with an error status)."""
        self._span.set_status(_trace.Status(_trace.StatusCode.ERROR, description))

    def trace_headers(self) -> dict[str, str]:
        """The W3C headers carrying this span to a callee (`trace_headers`)."""
        return trace_headers(self._span)

    def close(self, error: BaseException | None) -> None:
        if error is not None and self._span.is_recording():
            record_exception(self._span, error)
        self._span.end()
        _context.detach(self._token)  # type: ignore[arg-type]


def start_span(
    name: str, kind: str = "INTERNAL", attributes: dict[str, Any] | None = None
) -> ActiveSpan | None:
    """Start a span as a child of the current one and make it current."""
    if _trace is None:
        return None
    span = _trace.get_tracer("pilothouse").start_span(name, kind=_trace.SpanKind[kind], attributes=attributes)
    return ActiveSpan(span, _context.attach(_trace.set_span_in_context(span)))


def trace_headers(span: Any) -> dict[str, str]:
    """The W3C `traceparent` (and `tracestate`) carrying an OpenTelemetry span to a callee;
    empty for a span with no valid context (no SDK provider installed)."""
    context = span.get_span_context()
    if not context.is_valid:
        return {}
    parent = format_header(f"{context.trace_id:032x}", f"{context.span_id:016x}", context.trace_flags)
    headers = {"traceparent": parent.decode()}
    if context.trace_state:
        headers["tracestate"] = context.trace_state.to_header()
    return headers


def error_type(error: BaseException) -> str:
    """`error.type` of an exception: its fully qualified class name (`ValueError`,
    `psycopg.errors.UndefinedTable`; private modules left out: `httpx.ConnectError`, not
    `httpx._exceptions.ConnectError`), a bounded value for span attributes and metric labels."""
    cls = type(error)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    public = ".".join(takewhile(lambda part: not part.startswith("_"), cls.__module__.split(".")))
    return f"{public}.{cls.__qualname__}" if public else cls.__qualname__


def current_span_set(key: str, value: str) -> None:
    """Set an attribute on the current span, if there is one."""
    if _trace is not None:
        _trace.get_current_span().set_attribute(key, value)


def exception_fields(error: BaseException) -> dict[str, str]:
    """The `exception` event's fields as the SDK writes them, message and stack trace redacted
    (a driver's error text can carry a value: `Key (email)=(…) already exists`)."""
    return {
        "exception.type": error_type(error),
        "exception.message": redact(str(error)),
        "exception.stacktrace": redact("".join(traceback.format_exception(error))),
        "exception.escaped": "True",
    }


def record_exception(span: Any, error: BaseException) -> None:
    """The redacted `exception` event, `error.type` and ERROR status with the class's name."""
    span.set_attribute("error.type", error_type(error))
    span.add_event("exception", exception_fields(error))
    span.set_status(_trace.Status(_trace.StatusCode.ERROR, type(error).__name__))

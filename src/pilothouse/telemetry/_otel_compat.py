"""Every OpenTelemetry API/SDK internal Pilothouse relies on, in one place, each checked when
this module is imported, with the public-API way used instead when the check fails (a release
changed the internal). Nothing else in the package reaches into OpenTelemetry's private names.

1. `span_context`: a `SpanContext` built as the tuple its constructor builds after checking the
   ids (for ids known valid), else the constructor.
2. `runtime_context_var`: the `ContextVar` behind the default (contextvars) runtime context, so
   making a span current is one copy and one `set`; else None and callers use `attach`/`detach`.
3. `span_processors`: the processors tuple of the provider's `SynchronousMultiSpanProcessor`
   (its `_span_processors`), so a server span calls only the hooks they override; else None
   and the multi-processor is called as it is. `current_processors` reads that tuple again, per
   span, from a multi-processor `span_processors` accepted.
4. `ON_ENDING`: the name of the SDK's private `_on_ending` hook (called before `on_end`).
5. `suppress_instrumentation` / `unsuppress`: the context key instrumentations check so the
   exporter's own HTTP calls are not traced; else a no-op.
6. `READABLE_SPAN_LAYOUT`: whether `ReadableSpan`'s properties read the fields a `ServerSpan`
   sets (`_name`, `_context`, `_attributes`...); when not, a server span hands processors a
   `ReadableSpan` built with the public constructor (`readable_copy`) instead of itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextvars import ContextVar
from operator import attrgetter
from typing import Any

from opentelemetry import context as _context
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, SynchronousMultiSpanProcessor
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import DEFAULT_TRACE_STATE, TraceState

log = logging.getLogger("pilothouse.telemetry")

# -- 1. SpanContext without the constructor's checks -----------------------------------------

_new_tuple = tuple.__new__


def _checked_span_context(
    trace_id: int, span_id: int, flags: TraceFlags, state: TraceState | None
) -> SpanContext:
    return SpanContext(trace_id, span_id, False, flags, state)


def _direct_span_context(
    trace_id: int, span_id: int, flags: TraceFlags, state: TraceState | None
) -> SpanContext:
    """`SpanContext(...)` for ids known to be valid (non-zero, in range): the tuple its
    `__new__` builds after checking them, built directly."""
    return _new_tuple(SpanContext, (trace_id, span_id, False, flags, state or DEFAULT_TRACE_STATE, True))


def _same_as_constructor() -> bool:
    direct = _direct_span_context(1, 2, TraceFlags(1), None)
    checked = SpanContext(1, 2, False, TraceFlags(1))
    fields = ("trace_id", "span_id", "is_remote", "trace_flags", "trace_state", "is_valid")
    return direct == checked and all(getattr(direct, f) == getattr(checked, f) for f in fields)


span_context = _direct_span_context if _same_as_constructor() else _checked_span_context
# The same check says a `SpanContext` unpacks as (trace_id, span_id, is_remote, trace_flags,
# trace_state, is_valid): the OTLP encoder reads a server span's context that way.
SPAN_CONTEXT_IS_TUPLE = span_context is _direct_span_context

# -- 2. the runtime context's ContextVar ------------------------------------------------------


def _runtime_context_var() -> ContextVar[Any] | None:
    try:
        from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
    except ImportError:
        return None
    runtime = getattr(_context, "_RUNTIME_CONTEXT", None)
    var = getattr(runtime, "_current_context", None)
    if type(runtime) is not ContextVarsRuntimeContext or not isinstance(var, ContextVar):
        return None
    # It must be what `get_current` reads: attach through it and read back.
    probe = _context.Context({"pilothouse.compat.probe": True})
    token = var.set(probe)
    try:
        same = _context.get_current() is probe
    finally:
        var.reset(token)
    return var if same else None


runtime_context_var = _runtime_context_var()

# -- 3, 4. the provider's span processors and the private end hook ---------------------------

ON_ENDING = "_on_ending"


def _processors_attribute_works() -> bool:
    multi = SynchronousMultiSpanProcessor()  # type: ignore[no-untyped-call]
    before = getattr(multi, "_span_processors", None)
    processor = SpanProcessor()
    multi.add_span_processor(processor)
    after = getattr(multi, "_span_processors", None)
    return isinstance(before, tuple) and isinstance(after, tuple) and after == (*before, processor)


_PROCESSORS_OK = _processors_attribute_works()


def span_processors(processor: Any) -> tuple[SpanProcessor, ...] | None:
    """The processors of the provider's usual multi-processor; None for any other kind, or when
    the SDK no longer keeps them where checked (then the processor is called as it is)."""
    if _PROCESSORS_OK and type(processor) is SynchronousMultiSpanProcessor:
        processors: tuple[SpanProcessor, ...] = processor._span_processors
        return processors
    return None


current_processors: Callable[[Any], tuple[SpanProcessor, ...]] = attrgetter("_span_processors")
"""The tuple `span_processors` returned, read again (one C call: the request path checks per span
whether a processor was added); only for a processor `span_processors` did not return None for."""

# -- 5. suppressing instrumentation of the exporter's own calls -------------------------------

_SUPPRESS_KEY: str | None = getattr(_context, "_SUPPRESS_INSTRUMENTATION_KEY", None)


def suppress_instrumentation() -> object | None:
    """Mark the current context so instrumented HTTP clients skip their spans; a token for
    `unsuppress`, or None."""
    if _SUPPRESS_KEY is None:
        return None
    return _context.attach(_context.set_value(_SUPPRESS_KEY, True))


def unsuppress(token: object | None) -> None:
    if token is not None:
        _context.detach(token)  # type: ignore[arg-type]


# -- 6. ReadableSpan's fields ------------------------------------------------------------------

_FIELDS = (
    "_name",
    "_context",
    "_parent",
    "_attributes",
    "_events",
    "_links",
    "_kind",
    "_status",
    "_start_time",
    "_end_time",
    "_resource",
    "_instrumentation_scope",
)


def _readable_span_layout() -> bool:
    """Whether `ReadableSpan`'s public properties read the private fields a `ServerSpan` sets."""
    context = SpanContext(1, 2, False, TraceFlags(1))
    status = Status(StatusCode.ERROR, "x")
    span = object.__new__(ReadableSpan)
    values: dict[str, Any] = {
        "_name": "n",
        "_context": context,
        "_parent": None,
        "_attributes": {"k": "v"},
        "_events": (),
        "_links": (),
        "_kind": SpanKind.SERVER,
        "_status": status,
        "_start_time": 1,
        "_end_time": 2,
        "_resource": None,
        "_instrumentation_scope": None,
    }
    try:
        for key, value in values.items():
            setattr(span, key, value)
        return (
            span.name == "n"
            and span.context is context
            and span.kind is SpanKind.SERVER
            and dict(span.attributes or {}) == {"k": "v"}
            and span.status is status
            and span.start_time == 1
            and span.end_time == 2
        )
    except Exception:
        return False


READABLE_SPAN_LAYOUT = _readable_span_layout()
if not READABLE_SPAN_LAYOUT:  # pragma: no cover - depends on the SDK release
    log.info("opentelemetry-sdk's ReadableSpan changed: server spans are exported as copies")


def readable_copy(span: Any) -> ReadableSpan:
    """`span` as a `ReadableSpan` built with the SDK's public constructor."""
    return ReadableSpan(
        name=span._name,
        context=span._context,
        parent=span._parent,
        resource=span.resource,
        attributes=dict(span.values),
        events=tuple(span._events),
        links=tuple(span._links),
        kind=span._kind,
        status=span._status,
        start_time=span._start_time,
        end_time=span._end_time,
        instrumentation_scope=span.instrumentation_scope,
    )

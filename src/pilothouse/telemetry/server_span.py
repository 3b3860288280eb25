"""The request's server span, without the SDK's per-span machinery on the request path.

The SDK's `Tracer.start_span` builds a `Context` for the parent, runs the sampler, wraps
attributes in a locked `BoundedAttributes`, and copies the span into a new `ReadableSpan` at
its end: most of the tracing cost per request. `ServerSpan` is one object that is both an
OpenTelemetry API `Span` (so it is the current span while the app runs: app code can set
attributes on it, and children made with `opentelemetry.trace.get_tracer(...)` nest under it)
and an SDK `ReadableSpan` (so the tracer provider's span processors and exporters take it as
it is: batch export, OTLP, console, in-memory). Ids, sampling (parent-based), resource and
processors are the provider's, so it lands in the same pipeline as every other span.

A span is used by the one request task that owns it: unlike the SDK's spans it takes no lock.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Mapping, Sequence
from random import getrandbits
from time import time_ns
from typing import TYPE_CHECKING, Any

from opentelemetry import trace as trace_api
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import TraceIdRatioBased
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import DEFAULT_TRACE_STATE, TraceState

from pilothouse.redaction import redact
from pilothouse.telemetry import traceparent
from pilothouse.telemetry._otel_compat import (
    ON_ENDING,
    READABLE_SPAN_LAYOUT,
    SPAN_CONTEXT_IS_TUPLE,
    current_processors,
    readable_copy,
    span_context,
    span_processors,
)

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import Tracer

log = logging.getLogger("pilothouse.telemetry")

_SAMPLED = TraceFlags.SAMPLED
_RANDOM = TraceFlags.RANDOM_TRACE_ID
_FLAGS = {flags: TraceFlags(flags) for flags in range(256)}
_UNSET = Status(StatusCode.UNSET)
_SCALAR = (str, bool, int, float)
_LOW_64 = TraceIdRatioBased.TRACE_ID_LIMIT  # the bits TraceIdRatioBased compares
_new_tuple = tuple.__new__
_new_object = object.__new__


def _clean(value: Any) -> Any:
    """An attribute value the OTLP encoder accepts (scalar or sequence of scalars), else None."""
    if isinstance(value, _SCALAR):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(item, _SCALAR) for item in value):
        return tuple(value)
    return None


class ServerSpan(trace_api.Span, ReadableSpan):
    """A recording SERVER span; see the module docstring. What is the same for every server
    span (kind, resource, scope, no links yet) lives on the class or the `ServerSpanStarter`, so a
    span sets six fields."""

    _kind = SpanKind.SERVER
    _links: Sequence[trace_api.Link] = ()
    _events: Sequence[Event] = ()
    _instrumentation_info = None
    _status = _UNSET
    _end_time: int | None = None
    # Recorded though the ratio did not sample it: exported only if it ends as an error or slow
    # (`keep_errors_and_slow`; see `ServerSpanStarter`).
    _provisional = False

    def __init__(
        self,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        attributes: dict[str, Any],
        spans: ServerSpanStarter,
        trace_hex: str,
        span_hex: str,
    ) -> None:
        self._name = name
        self._context = context
        self._parent = parent
        self._attributes = self.values = attributes  # the middleware writes its own keys directly
        self._spans = spans
        self._start_time = time_ns()
        self.trace_hex = trace_hex
        self.span_hex = span_hex

    @property
    def resource(self) -> Resource:
        return self._spans.resource

    @property
    def instrumentation_scope(self) -> InstrumentationScope:
        return self._spans.scope

    # -- the API Span ------------------------------------------------------------------------

    def get_span_context(self) -> SpanContext:
        return self._context  # type: ignore[return-value]  # set in __init__, never None

    def is_recording(self) -> bool:
        return self._end_time is None

    def set_attribute(self, key: str, value: Any) -> None:
        if self._end_time is not None:
            return
        clean = _clean(value)
        if not key or clean is None:
            log.warning("span attribute %r: unsupported value type %s, dropped", key, type(value).__name__)
            return
        self.values[key] = clean

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        for key, value in attributes.items():
            self.set_attribute(key, value)

    def add_event(
        self, name: str, attributes: Mapping[str, Any] | None = None, timestamp: int | None = None
    ) -> None:
        if self._end_time is None:
            self._events = [*self._events, Event(name, attributes, timestamp or time_ns())]

    def update_name(self, name: str) -> None:
        if self._end_time is None:
            self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        """As the SDK: OK is final, UNSET is ignored."""
        if self._end_time is not None or self._status.status_code is StatusCode.OK:
            return
        if isinstance(status, StatusCode):
            status = Status(status, description)
        if status.status_code is not StatusCode.UNSET:
            self._status = status

    def record_exception(
        self,
        exception: BaseException,
        attributes: Mapping[str, Any] | None = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        """The SDK's `exception` event: type, message, stack trace (message and stack trace
        redacted, as in every other span and log line)."""
        cls = type(exception)
        module = cls.__module__
        fields: dict[str, Any] = {
            "exception.type": f"{module}.{cls.__qualname__}" if module != "builtins" else cls.__qualname__,
            "exception.message": redact(str(exception)),
            "exception.stacktrace": redact("".join(traceback.format_exception(exception))),
            "exception.escaped": str(escaped),
        }
        fields.update(attributes or {})
        self.add_event("exception", fields, timestamp)

    def end(self, end_time: int | None = None) -> None:
        if self._end_time is not None:
            log.warning("span %r: end() called twice", self._name)
            return
        self._end_time = end_time or time_ns()
        if self._provisional:
            self._keep_if_it_matters()
        spans = self._spans
        hooks = spans._hooks  # as `spans.hooks()`, without the call when nothing changed
        if spans._multi is not None and current_processors(spans._multi) is not hooks.source:
            hooks = spans.hooks()
        for processor in hooks.on_ending:
            getattr(processor, ON_ENDING)(self)
        finished = self if READABLE_SPAN_LAYOUT else readable_copy(self)
        for processor in hooks.on_end:
            processor.on_end(finished)

    def _keep_if_it_matters(self) -> None:
        """The decision at the end for a span the ratio did not sample: an error (5xx, an
        exception: the middleware sets the ERROR status for both) or a duration over the SLO
        latency threshold turns the sampled flag on, so the processors export it."""
        slow = self._spans.slow_after_ns
        failed = self._status.status_code is StatusCode.ERROR
        if failed or (slow is not None and self._end_time - self._start_time > slow):  # type: ignore[operator]
            context = self._context
            assert context is not None
            self._context = span_context(
                context.trace_id, context.span_id, _FLAGS[context.trace_flags | _SAMPLED], context.trace_state
            )

    def __repr__(self) -> str:
        return f"ServerSpan({self._name!r}, trace_id={self.trace_hex}, span_id={self.span_hex})"


class _Hooks:
    """The calls a span makes into the provider's processors: the SDK's
    `SynchronousMultiSpanProcessor` loops over every processor for every hook; here the
    loop is over the processors that override a hook (most batch exporters need only
    `on_end`). Rebuilt whenever the provider's processor tuple changes."""

    __slots__ = ("on_end", "on_ending", "on_start", "source")

    def __init__(self, multi: SpanProcessor, processors: tuple[SpanProcessor, ...] | None) -> None:
        self.source = processors
        if processors is None:  # another multi-processor (e.g. the concurrent one): call it
            processors = (multi,)
        # The processors, not bound methods: a hook patched on an instance later still runs.
        # Any: the SDK types their hooks for its own `Span`; a `ServerSpan` is what they get.
        self.on_start: tuple[Any, ...] = tuple(p for p in processors if _overrides(p, "on_start"))
        self.on_ending: tuple[Any, ...] = tuple(p for p in processors if _overrides(p, ON_ENDING))
        self.on_end: tuple[Any, ...] = processors


def _overrides(processor: SpanProcessor, hook: str) -> bool:
    """Whether `processor`'s `hook` does something: not the SDK base class's no-op."""
    method = getattr(processor, hook, None)
    return getattr(method, "__func__", method) is not getattr(SpanProcessor, hook, None)


class ServerSpanStarter:
    """Starts server spans in one SDK tracer's pipeline: its ids, sampler, resource, processors.

    `sample_ratio` is the ratio of the `ParentBased(TraceIdRatioBased)` sampler Pilothouse
    installed; the decision is then made here in two comparisons. With a provider the app
    installed (`sample_ratio=None`) its own sampler is asked, whatever it is.

    `keep_errors_and_slow` (with Pilothouse's sampler only): a request the ratio (or its
    parent) leaves unsampled still gets a recording span, marked provisional and not sampled
    (so its traceparent, its children and exemplars stay unsampled); at its end it is kept
    (exported) when it failed or took longer than `slow_after` seconds (`[slo.latency]
    .threshold`; None: errors only). Every server span is a local root (its parent, if any,
    is remote), so this is the tail decision for each one.
    """

    __slots__ = (
        "_bound",
        "_hooks",
        "_ids",
        "_multi",
        "_random",
        "_random_ids",
        "_sampler",
        "keep_unsampled",
        "processor",
        "resource",
        "scope",
        "slow_after_ns",
    )

    def __init__(
        self,
        tracer: Tracer,
        sample_ratio: float | None,
        *,
        keep_errors_and_slow: bool = False,
        slow_after: float | None = None,
    ) -> None:
        self.processor: Any = tracer.span_processor
        # The provider's usual processor, whose processors the hooks call directly; None for
        # any other kind (then called as it is).
        processors = span_processors(self.processor)
        self._multi = self.processor if processors is not None else None
        self._hooks = _Hooks(self.processor, processors)
        self.resource = tracer.resource
        self.scope = InstrumentationScope(tracer.instrumentation_info.name)
        self._ids = tracer.id_generator
        # The SDK's default generator is `getrandbits` in a method: called directly here.
        self._random_ids = type(self._ids) is RandomIdGenerator
        self._random = _RANDOM if self._ids.is_trace_id_random() else 0  # a property of the generator
        self._sampler = tracer.sampler
        self._bound = TraceIdRatioBased.get_bound_for_rate(sample_ratio) if sample_ratio is not None else None
        self.keep_unsampled = keep_errors_and_slow and self._bound is not None
        self.slow_after_ns = int(slow_after * 1e9) if slow_after is not None else None

    @property
    def random_ids(self) -> bool:
        """Whether ids come from the SDK's random generator (so a new trace id is unique)."""
        return self._random_ids

    def hex_ids(self, trace_id: int, span_id: int) -> tuple[str, str]:
        """The ids as lowercase hex, as `format(id, "032x")` / `"016x"`: for the SDK's random
        ids (which fit their width) in half the time, otherwise (a custom generator may return
        any int) with `format`."""
        if self._random_ids:
            return trace_id.to_bytes(16, "big").hex(), span_id.to_bytes(8, "big").hex()
        return format(trace_id, "032x"), format(span_id, "016x")

    def hooks(self) -> _Hooks:
        """The current processor hooks (a processor may be added to the provider any time:
        `SynchronousMultiSpanProcessor` then replaces its tuple)."""
        hooks = self._hooks
        multi = self._multi
        if multi is not None and (processors := current_processors(multi)) is not hooks.source:
            hooks = self._hooks = _Hooks(multi, processors)
        return hooks

    def start_new(self, method: str, attributes: dict[str, Any]) -> ServerSpan | NonRecordingSpan:
        """`start(method, attributes, None, None, None)`: the span of a request starting a new
        trace, the common case, in fewer steps when the ids are the SDK's random ones and the
        sampler Pilothouse's (the same ids from the same random state, the same decision and
        span: tests/telemetry/test_server_span.py); otherwise `start` itself."""
        bound = self._bound
        if bound is None or not self._random_ids:
            return self.start(method, attributes, None, None, None)
        trace_id = getrandbits(128)
        while not trace_id:  # zero is the invalid id
            trace_id = getrandbits(128)
        sampled = trace_id & _LOW_64 < bound
        span_id = getrandbits(64)
        while not span_id:
            span_id = getrandbits(64)
        flags = self._random | _SAMPLED if sampled else self._random
        if SPAN_CONTEXT_IS_TUPLE:  # `span_context(...)`, without the call
            context = _new_tuple(
                SpanContext, (trace_id, span_id, False, _FLAGS[flags], DEFAULT_TRACE_STATE, True)
            )
        else:
            context = span_context(trace_id, span_id, _FLAGS[flags], None)
        if not sampled and not self.keep_unsampled:
            return NonRecordingSpan(context)
        # `ServerSpan(...)` without calling the class (which runs `__init__` in a frame of its
        # own, outside the interpreter's inlined calls): the same fields.
        span = _new_object(ServerSpan)
        span._name = method
        span._context = context
        span._parent = None
        span._attributes = span.values = attributes
        span._spans = self
        span._start_time = time_ns()
        span.trace_hex = trace_id.to_bytes(16, "big").hex()  # `hex_ids` for random ids
        span.span_hex = span_id.to_bytes(8, "big").hex()
        if not sampled:
            span._provisional = True
        hooks = self._hooks  # `_started`, without the call
        if self._multi is not None and current_processors(self._multi) is not hooks.source:
            hooks = self.hooks()
        for processor in hooks.on_start:
            processor.on_start(span, parent_context=None)
        return span

    def start(
        self,
        method: str,
        attributes: dict[str, Any],
        header: str | None,
        state: str | None,
        base: Context | None,
    ) -> ServerSpan | NonRecordingSpan:
        """The span of a request carrying `traceparent` `header` (and `tracestate` `state`), or a
        non-recording span holding the ids when it is not sampled. `base` is an extracted
        context (baggage) the parent is read from instead, or None."""
        parent: SpanContext | None = None
        if base is not None:
            parent = trace_api.get_current_span(base).get_span_context()
            if not parent.is_valid:
                parent = None
        elif header is not None:
            parsed = traceparent.parse(header)
            if parsed is not None:
                trace_state = TraceState.from_header([state]) if state else None
                parent = SpanContext(parsed[0], parsed[1], True, _FLAGS[parsed[2]], trace_state)
        ids = self._ids
        random_ids = self._random_ids
        if parent is None:
            if random_ids:
                trace_id = getrandbits(128)
                while not trace_id:  # zero is the invalid id
                    trace_id = getrandbits(128)
            else:
                trace_id = ids.generate_trace_id()
            flags = self._random
            trace_state = None
        else:
            trace_id = parent.trace_id
            flags = parent.trace_flags & _RANDOM
            trace_state = parent.trace_state
        bound = self._bound
        if bound is not None:
            if parent is not None:
                recording = sampled = parent.trace_flags.sampled
            else:
                recording = sampled = trace_id & _LOW_64 < bound
        else:
            parent_context = base
            if parent is not None and base is None:
                parent_context = trace_api.set_span_in_context(NonRecordingSpan(parent))
            result = self._sampler.should_sample(
                parent_context, trace_id, method, SpanKind.SERVER, attributes
            )
            decision = result.decision
            recording = decision.is_recording()  # type: ignore[no-untyped-call]
            sampled = decision.is_sampled()  # type: ignore[no-untyped-call]
            trace_state = result.trace_state
            if result.attributes:
                attributes.update(result.attributes)
        if sampled:
            flags |= _SAMPLED
        if random_ids:  # valid ids of the right size (the parent's were checked when parsed)
            span_id = getrandbits(64)
            while not span_id:
                span_id = getrandbits(64)
            context = span_context(trace_id, span_id, _FLAGS[flags], trace_state)
        else:  # a custom generator's ids: checked by the constructor
            span_id = ids.generate_span_id()
            context = SpanContext(trace_id, span_id, False, _FLAGS[flags], trace_state)
        provisional = not recording and self.keep_unsampled
        if not recording and not provisional:
            return NonRecordingSpan(context)
        span = ServerSpan(method, context, parent, attributes, self, *self.hex_ids(trace_id, span_id))
        if provisional:
            span._provisional = True
        return self._started(span, base)

    def _started(self, span: ServerSpan, base: Context | None) -> ServerSpan:
        """`span`, announced to the processors' `on_start`."""
        hooks = self._hooks  # as `self.hooks()`, without the call when nothing changed
        if self._multi is not None and current_processors(self._multi) is not hooks.source:
            hooks = self.hooks()
        for processor in hooks.on_start:
            processor.on_start(span, parent_context=base)
        return span

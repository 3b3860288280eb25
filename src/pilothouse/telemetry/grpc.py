"""gRPC spans and call metrics: interceptors for grpc.aio and grpc servers and clients.

    from pilothouse.telemetry.grpc import aio_client_interceptors, aio_server_interceptor

    interceptor = aio_server_interceptor()
    server = grpc.aio.server(interceptors=[interceptor])
    interceptor.server_port = server.add_insecure_port("127.0.0.1:0")   # server.address/port

    channel = grpc.aio.insecure_channel(target, interceptors=aio_client_interceptors(target))

(`server_interceptor()` and `client_interceptors(target)` for the synchronous `grpc.server` and
`grpc.intercept_channel`.)

Each RPC a server handles gets one SERVER span named `package.Service/Method`, started by the
same `ServerSpanStarter` as the HTTP server spans (the provider's ids, processors and Pilothouse's
exporter; the same parent-based sampling, `keep_errors_and_slow` and slow threshold), continuing
the W3C `traceparent`/`tracestate` of the call's metadata, and current while the handler runs (so
its spans nest under it). Each call a client makes gets a CLIENT span, a child of the current
span, whose context goes out in the call's `traceparent`/`tracestate` metadata. Both record
`rpc_server_call_duration_seconds` / `rpc_client_call_duration_seconds` (catalog/rpc.py).

Attributes follow the OpenTelemetry RPC and gRPC semantic conventions as of v1.37.0, the version
OpenTelemetry's own grpc instrumentation emits and its successors tell existing instrumentations
to keep by default (https://github.com/open-telemetry/semantic-conventions/blob/v1.37.0/docs/rpc/
rpc-spans.md and .../rpc/grpc.md; the current "Release Candidate" at
https://opentelemetry.io/docs/specs/semconv/rpc/grpc/ renames `rpc.system` to `rpc.system.name`
and the numeric `rpc.grpc.status_code` to the string `rpc.response.status_code`):
`rpc.system` = "grpc", `rpc.service` (`package.Service`), `rpc.method` (`Method`),
`rpc.grpc.status_code` (the code's number), `server.address` / `server.port` (a client's
target; a server's when it is told), `network.peer.address` / `network.peer.port` (a server's
caller, from `context.peer()`), and `error.type` when the call failed (the code's name, or the
exception's type). Span status, as those conventions say: a client span is ERROR for every code
but OK; a server span only for UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE
and DATA_LOSS (the others are the caller's errors, e.g. NOT_FOUND) and for a handler that
raised. The status description is the code's name or the exception's type, never the status
details; an exception is recorded as the `exception` event with its message and stack trace
passed through `pilothouse.redaction.redact` (secrets, URL credentials, `password=` pairs
masked). Metadata values are never recorded. A handler gRPC cancels (no exception of its own) ends
as DEADLINE_EXCEEDED when its deadline passed, else CANCELLED; so does a client call its caller
cancels (CANCELLED).

grpcio is optional (`pilothouse[grpc]`): this module imports it when an interceptor is made, and
nothing else in Pilothouse imports this module.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from time import perf_counter
from typing import TYPE_CHECKING, Any

from pilothouse.catalog import rpc as rpc_metrics
from pilothouse.errors import ConfigError
from pilothouse.telemetry.spans import record_exception, trace_headers
from pilothouse.telemetry.state import state

try:
    from opentelemetry import trace as _trace
    from opentelemetry.trace import Status, StatusCode
except ImportError:  # pragma: no cover - exercised only without the traces extra
    _trace = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from pilothouse.catalog.spec import MetricSpec

# Codes that make a server span an error (the gRPC conventions); a client span: every code but OK.
SERVER_ERROR_CODES = frozenset(
    ("UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS")
)
TRACE_KEYS = ("traceparent", "tracestate")
_KINDS = (("unary_unary", False), ("unary_stream", True), ("stream_unary", False), ("stream_stream", True))
_PENDING: set[Any] = set()  # tasks ending streamed client calls' spans (kept until they ran)


def _grpc() -> Any:
    try:
        import grpc  # type: ignore[import-untyped]  # grpcio ships no stubs
        import grpc.aio  # type: ignore[import-untyped]
    except ImportError:
        raise ConfigError("pilothouse.telemetry.grpc needs grpcio: pip install 'pilothouse[grpc]'") from None
    return grpc


def split_method(full: str | bytes) -> tuple[str, str, str]:
    """(span name `package.Service/Method`, service, method) of a gRPC path `/package.Service/Method`."""
    if isinstance(full, bytes):
        full = full.decode("utf-8", "replace")
    name = full.lstrip("/")
    service, _, method = name.rpartition("/")
    return name, service, method


def _host_port(target: str) -> tuple[str | None, int | None]:
    """`server.address` / `server.port` of a client target (`host:port`, `dns:///host:port`,
    `[::1]:port`, `unix:/path`)."""
    if target.startswith(("unix:", "unix-abstract:")):
        return target.split(":", 1)[1], None
    if "///" in target:
        target = target.split("///", 1)[1]
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit() or (host.count(":") and not host.startswith("[")):
        return target.strip("[]") or None, None
    return host.strip("[]"), int(port)


def _peer(peer: str | None) -> tuple[str | None, int | None]:
    """`network.peer.address` / `.port` of `context.peer()`: `ipv4:1.2.3.4:5`, `ipv6:[::1]:5`, `unix:/p`."""
    if not peer:
        return None, None
    kind, _, rest = peer.partition(":")
    if kind in ("ipv4", "ipv6"):
        host, _, port = rest.rpartition(":")
        return host.strip("[]"), int(port) if port.isdigit() else None
    return rest or None, None


def _observe(spec: MetricSpec, service: str, method: str, code: int, started: float) -> None:
    state.metrics.histogram(spec).labels(service, method, str(code)).observe(perf_counter() - started)


# -- servers ---------------------------------------------------------------------------------


class _ServerCall:
    """One RPC being served, as a `with` block around its handler: its span (current inside) and
    its metrics."""

    __slots__ = ("_context", "_grpc", "_otel", "_started", "_token", "method", "service", "span")

    def __init__(self, owner: _ServerInterceptorBase, details: Any, context: Any) -> None:
        self._grpc = owner.grpc
        self._context = context
        name, self.service, self.method = split_method(details.method)
        self._started = perf_counter()
        self.span: Any = None
        self._token: Any = None
        self._otel = owner.otel()
        starter = owner.starter()
        if starter is None or self._otel is None:
            return
        header = state_header = None
        for key, value in details.invocation_metadata or ():
            if key == "traceparent" and isinstance(value, str):
                header = value
            elif key == "tracestate" and isinstance(value, str):
                state_header = value if state_header is None else f"{state_header},{value}"
        attributes: dict[str, Any] = {
            "rpc.system": "grpc",
            "rpc.service": self.service,
            "rpc.method": self.method,
        }
        if owner.server_address is not None:
            attributes["server.address"] = owner.server_address
        if owner.server_port is not None:
            attributes["server.port"] = owner.server_port
        address, port = _peer(context.peer() if context is not None else None)
        if address is not None:
            attributes["network.peer.address"] = address
            if port is not None:
                attributes["network.peer.port"] = port
        self.span = starter.start(name, attributes, header, state_header, None)
        self._token = self._otel.attach_span(self.span)

    def __enter__(self) -> _ServerCall:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: Any) -> None:
        self.end(self._context, error)

    def end(self, context: Any, error: BaseException | None) -> None:
        """End the span with the call's status (the handler's `set_code`/`abort`, else OK, or
        UNKNOWN for an exception gRPC turns into that status; CANCELLED for a call cancelled
        while it ran) and observe its duration."""
        codes = self._grpc.StatusCode
        code = context.code() if context is not None else None
        if isinstance(error, (GeneratorExit, asyncio.CancelledError)):  # gRPC cancelled the handler
            error, code = None, code or _cancelled(codes, context)
        aborted = error is not None and code is not None and code is not codes.OK
        if error is not None and not aborted:
            code = codes.UNKNOWN
        elif code is None:
            code = codes.OK
        number = code.value[0]
        span = self.span
        otel = self._otel
        if otel is not None and type(span) is otel.server_span and span._end_time is None:
            span.values["rpc.grpc.status_code"] = number
            if error is not None and not aborted:
                record_exception(span, error)
            elif code.name in SERVER_ERROR_CODES:
                span.values["error.type"] = code.name
                span.set_status(otel.status_error(code.name))
            span.end()
        if self._token is not None:
            otel.detach_span(self._token)
        _observe(rpc_metrics.RPC_SERVER_CALL_DURATION, self.service, self.method, number, self._started)


def _cancelled(codes: Any, context: Any) -> Any:
    """Why a handler was cancelled: its deadline passed, or the caller went away."""
    remaining = context.time_remaining() if context is not None else None
    return codes.DEADLINE_EXCEEDED if remaining is not None and remaining <= 0 else codes.CANCELLED


class _ServerInterceptorBase:
    """What the sync and aio server interceptors share: where spans start, what wraps a handler."""

    def __init__(self, server_address: str | None = None, server_port: int | None = None) -> None:
        self.grpc = _grpc()
        self.server_address = server_address
        self.server_port = server_port
        self._otel: Any = None

    def starter(self) -> Any:
        from pilothouse.telemetry.tracing import current_server_span_starter

        return current_server_span_starter()

    def otel(self) -> Any:
        if self._otel is None:
            try:
                from pilothouse.telemetry.otel_context import OtelContext
            except ImportError:  # pragma: no cover - exercised only without the traces extra
                return None
            self._otel = OtelContext()
        return self._otel

    def _wrap(self, handler: Any, details: Any, wrap: Callable[[Any, bool], Any]) -> Any:
        if handler is None:  # an unimplemented method: gRPC answers UNIMPLEMENTED, nothing is recorded
            return None
        for kind, streams in _KINDS:
            behavior = getattr(handler, kind)
            if behavior is not None:
                make = getattr(self.grpc, f"{kind}_rpc_method_handler")
                return make(
                    wrap(behavior, streams), handler.request_deserializer, handler.response_serializer
                )
        return handler

    def _sync_behavior(self, details: Any) -> Callable[[Any, bool], Any]:
        def wrap(behavior: Callable[..., Any], streams: bool) -> Any:
            if streams:

                def stream(request: Any, context: Any) -> Iterator[Any]:
                    with _ServerCall(self, details, context):
                        yield from behavior(request, context)

                return stream

            def unary(request: Any, context: Any) -> Any:
                with _ServerCall(self, details, context):
                    return behavior(request, context)

            return unary

        return wrap


def _server_interceptor_class() -> type:
    grpc = _grpc()

    class ServerInterceptor(_ServerInterceptorBase, grpc.ServerInterceptor):  # type: ignore[misc,name-defined]
        """Spans and metrics for a synchronous `grpc.server`; see the module docstring."""

        def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
            return self._wrap(continuation(details), details, self._sync_behavior(details))

    return ServerInterceptor


def _aio_server_interceptor_class() -> type:
    grpc = _grpc()

    class AioServerInterceptor(_ServerInterceptorBase, grpc.aio.ServerInterceptor):  # type: ignore[misc,name-defined]
        """Spans and metrics for a `grpc.aio.server`; see the module docstring. Handlers may be
        coroutines, async generators, or plain functions (which grpc.aio runs in its thread pool)."""

        async def intercept_service(self, continuation: Callable[[Any], Awaitable[Any]], details: Any) -> Any:
            return self._wrap(await continuation(details), details, self._aio_behavior(details))

        def _aio_behavior(self, details: Any) -> Callable[[Any, bool], Any]:
            sync = self._sync_behavior(details)

            def wrap(behavior: Callable[..., Any], streams: bool) -> Any:
                if inspect.isasyncgenfunction(behavior):

                    async def stream(request: Any, context: Any) -> AsyncIterator[Any]:
                        with _ServerCall(self, details, context):
                            async for response in behavior(request, context):
                                yield response

                    return stream
                if inspect.iscoroutinefunction(behavior):

                    async def unary(request: Any, context: Any) -> Any:
                        with _ServerCall(self, details, context):
                            return await behavior(request, context)

                    return unary
                return sync(behavior, streams)

            return wrap

    return AioServerInterceptor


def server_interceptor(server_address: str | None = None, server_port: int | None = None) -> Any:
    """A `grpc.ServerInterceptor` for `grpc.server(..., interceptors=[...])`. `server_address`
    and `server_port` (settable later, e.g. to the port `add_insecure_port` bound) become the
    spans' `server.address` / `server.port`."""
    return _server_interceptor_class()(server_address, server_port)


def aio_server_interceptor(server_address: str | None = None, server_port: int | None = None) -> Any:
    """A `grpc.aio.ServerInterceptor` for `grpc.aio.server(interceptors=[...])`; as `server_interceptor`."""
    return _aio_server_interceptor_class()(server_address, server_port)


# -- clients ---------------------------------------------------------------------------------


class _ClientCall:
    """One outgoing call: its CLIENT span and the details carrying its context in the metadata."""

    __slots__ = ("_grpc", "_started", "details", "method", "service", "span")

    def __init__(self, target: tuple[str | None, int | None], details: Any, aio: bool, grpc: Any) -> None:
        self._grpc = grpc
        name, self.service, self.method = split_method(details.method)
        self._started = perf_counter()
        self.span: Any = None
        self.details = details
        if _trace is None:
            return
        attributes: dict[str, Any] = {
            "rpc.system": "grpc",
            "rpc.service": self.service,
            "rpc.method": self.method,
        }
        if target[0] is not None:
            attributes["server.address"] = target[0]
        if target[1] is not None:
            attributes["server.port"] = target[1]
        self.span = _trace.get_tracer("pilothouse").start_span(
            name, kind=_trace.SpanKind.CLIENT, attributes=attributes
        )
        metadata = [(k, v) for k, v in (details.metadata or ()) if k not in TRACE_KEYS]
        metadata.extend(trace_headers(self.span).items())
        self.details = _with_metadata(details, grpc.aio.Metadata(*metadata) if aio else tuple(metadata))

    def end(self, code: Any, error: BaseException | None) -> None:
        if isinstance(error, asyncio.CancelledError):  # the caller gave up on the call
            error, code = None, self._grpc.StatusCode.CANCELLED
        span = self.span
        number = 2 if error is not None else code.value[0]  # UNKNOWN: the call never got a status
        if span is not None:
            if error is not None:
                record_exception(span, error)
            else:
                span.set_attribute("rpc.grpc.status_code", number)
                if code.name != "OK":
                    span.set_attribute("error.type", code.name)
                    span.set_status(Status(StatusCode.ERROR, code.name))
            span.end()
        _observe(rpc_metrics.RPC_CLIENT_CALL_DURATION, self.service, self.method, number, self._started)


def _with_metadata(details: Any, metadata: Any) -> Any:
    """`details` with `metadata`: gRPC's details are namedtuples; anything else is copied."""
    if hasattr(details, "_replace"):
        return details._replace(metadata=metadata)
    return _Details(details, metadata)


class _Details:
    """A `ClientCallDetails` copy with other metadata (for details that are no namedtuple)."""

    def __init__(self, details: Any, metadata: Any) -> None:
        self.method = details.method
        self.timeout = details.timeout
        self.metadata = metadata
        self.credentials = details.credentials
        self.wait_for_ready = getattr(details, "wait_for_ready", None)
        self.compression = getattr(details, "compression", None)


def client_interceptors(target: str) -> list[Any]:
    """Interceptors for `grpc.intercept_channel(channel, *client_interceptors(target))`, one per
    call kind; `target` (the channel's `host:port`) gives `server.address` / `server.port`."""
    grpc = _grpc()
    where = _host_port(target)

    def intercept(self: Any, continuation: Callable[[Any, Any], Any], details: Any, request: Any) -> Any:
        call = _ClientCall(where, details, False, grpc)
        try:
            outcome = continuation(call.details, request)
        except BaseException as exc:
            call.end(None, exc)
            raise
        outcome.add_done_callback(lambda done: call.end(done.code(), None))
        return outcome

    bases = tuple(_base(grpc, kind) for kind, _ in _KINDS)
    interceptor = type("ClientInterceptor", bases, {f"intercept_{kind}": intercept for kind, _ in _KINDS})
    return [interceptor()]


def _camel(kind: str) -> str:
    return kind.title().replace("_", "")  # unary_stream -> UnaryStream


def _base(module: Any, kind: str) -> Any:
    """grpc's (or grpc.aio's) client interceptor class for one call kind."""
    return getattr(module, f"{_camel(kind)}ClientInterceptor")


def aio_client_interceptors(target: str) -> list[Any]:
    """Interceptors for `grpc.aio.insecure_channel(target, interceptors=...)` (or a secure
    channel), one per call kind (grpc.aio files each interceptor under one kind only)."""
    grpc = _grpc()
    where = _host_port(target)
    aio = grpc.aio

    async def traced(continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        """The call is handed back at once and its span ends when it does: waiting for its end here
        would deadlock a client-streaming call fed with `write()` (the writes wait for this)."""
        call = _ClientCall(where, details, True, grpc)
        try:
            rpc = await continuation(call.details, request)
        except BaseException as exc:
            call.end(None, exc)
            raise

        async def finish(done: Any) -> None:
            call.end(await done.code(), None)

        def done(rpc: Any) -> None:  # the call ended: its code is known, read without blocking
            task = asyncio.ensure_future(finish(rpc))
            _PENDING.add(task)
            task.add_done_callback(_PENDING.discard)

        rpc.add_done_callback(done)
        return rpc

    def interceptor(kind: str) -> Any:
        async def intercept(self: Any, continuation: Any, details: Any, request: Any) -> Any:
            return await traced(continuation, details, request)

        return type(f"{_camel(kind)}Interceptor", (_base(aio, kind),), {f"intercept_{kind}": intercept})()

    return [interceptor(kind) for kind, _ in _KINDS]

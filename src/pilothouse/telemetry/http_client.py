"""Outgoing HTTP calls (httpx): a CLIENT span per request, its W3C context in the request, and
`http_client_request_duration_seconds`.

    from pilothouse.telemetry.http_client import traced_async_client, traced_client

    with traced_client(base_url="https://kubernetes.default.svc") as client:
        pods = client.get("/api/v1/namespaces/ci/pods").json()

    async with traced_async_client() as client:
        await client.get(url)

(`TracedTransport(inner)` / `AsyncTracedTransport(inner)` wrap any httpx transport, for a client
built by hand: `httpx.Client(transport=TracedTransport(httpx.HTTPTransport(retries=2)))`.)

Each request gets a CLIENT span (Pilothouse's own, `telemetry.spans.start_span`: a child of the
current span, e.g. a job step or the server span of the request being served) named after the
method, and its `traceparent` / `tracestate` replace any the request carried, so the callee
continues the trace. Attributes follow the stable OpenTelemetry HTTP client span conventions
(https://opentelemetry.io/docs/specs/semconv/http/http-spans/#http-client-span):
`http.request.method` (`_OTHER` and `http.request.method_original` for a non-standard one),
`server.address`, `server.port`, `url.full` without user info or query (both may hold
credentials), `http.response.status_code`, and `error.type` (the status code for a 4xx/5xx
answer, which also makes the span ERROR; the exception's class when none came).

The duration, from sending the request to its response headers (the body is read by the caller),
is observed in `http_client_request_duration_seconds`, the `http.client.request.duration`
histogram (https://opentelemetry.io/docs/specs/semconv/http/http-metrics/#metric-httpclientrequestduration),
with the same method, server, status and error labels and never the URL's path: a Kubernetes
API call with a pod's name stays one series. The metric goes to the runtime's registry once the
telemetry feature bound it, else to a private one, so a script without a runtime records
without failing.

httpx is a core dependency; the spans need the `traces` extra (without it only the metric is
recorded and no header is added).
"""

from __future__ import annotations

from time import perf_counter
from typing import Any

import httpx

from pilothouse.catalog import http_client as http_client_metrics
from pilothouse.catalog.http_server import OTHER_METHOD, STANDARD_METHODS
from pilothouse.telemetry.spans import ActiveSpan, error_type, start_span
from pilothouse.telemetry.state import state

_DEFAULT_PORTS = {"http": 80, "https": 443}
_TRANSPORT_OPTIONS = ("verify", "cert", "trust_env", "http1", "http2", "limits")


class _Call:
    """One outgoing request: its span (current while it runs), the headers carrying it, and its
    observation when it ends."""

    __slots__ = ("host", "method", "port", "span", "started")

    def __init__(self, request: httpx.Request) -> None:
        url = request.url
        original = request.method.upper()
        self.method = original if original in STANDARD_METHODS else OTHER_METHOD
        self.host = url.host
        self.port = url.port if url.port is not None else _DEFAULT_PORTS.get(url.scheme, 0)
        attributes: dict[str, Any] = {
            "http.request.method": self.method,
            "server.address": self.host,
            "server.port": self.port,
            "url.full": str(url.copy_with(userinfo=b"", query=None, fragment=None)),
        }
        if self.method == OTHER_METHOD:
            attributes["http.request.method_original"] = original
        self.started = perf_counter()
        self.span: ActiveSpan | None = start_span(
            "HTTP" if self.method == OTHER_METHOD else self.method, kind="CLIENT", attributes=attributes
        )
        if self.span is not None:
            for key in ("traceparent", "tracestate"):
                request.headers.pop(key, None)
            request.headers.update(self.span.trace_headers())

    def end(self, response: httpx.Response | None, error: BaseException | None) -> None:
        status = str(response.status_code) if response is not None else ""
        failed = (
            error_type(error)
            if error is not None
            else status
            if response is not None and response.is_error
            else ""
        )
        span = self.span
        if span is not None:
            if response is not None:
                span.set_attribute("http.response.status_code", response.status_code)
            if failed:
                span.set_attribute("error.type", failed)
                if error is None:
                    span.fail(failed)
            span.close(error)
        histogram = state.metrics.histogram(http_client_metrics.HTTP_CLIENT_REQUEST_DURATION)
        histogram.labels(self.method, self.host, str(self.port), status, failed).observe(
            perf_counter() - self.started
        )


class TracedTransport(httpx.BaseTransport):
    """An httpx transport recording each request it sends through `inner` (see the module docstring)."""

    def __init__(self, inner: httpx.BaseTransport | None = None) -> None:
        self.inner = inner if inner is not None else httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        call = _Call(request)
        try:
            response = self.inner.handle_request(request)
        except BaseException as exc:
            call.end(None, exc)
            raise
        call.end(response, None)
        return response

    def close(self) -> None:
        self.inner.close()


class AsyncTracedTransport(httpx.AsyncBaseTransport):
    """The asyncio twin of `TracedTransport`."""

    def __init__(self, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self.inner = inner if inner is not None else httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        call = _Call(request)
        try:
            response = await self.inner.handle_async_request(request)
        except BaseException as exc:
            call.end(None, exc)
            raise
        call.end(response, None)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def _transport_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The client options its default transport would have taken (TLS, HTTP versions, limits)."""
    return {key: kwargs[key] for key in _TRANSPORT_OPTIONS if key in kwargs}


def traced_client(transport: httpx.BaseTransport | None = None, **kwargs: Any) -> httpx.Client:
    """An `httpx.Client(**kwargs)` whose requests are traced and measured; `transport` (default:
    an `httpx.HTTPTransport` with the client's `verify`, `cert`, `http2`... options) sends them."""
    inner = transport if transport is not None else httpx.HTTPTransport(**_transport_options(kwargs))
    return httpx.Client(transport=TracedTransport(inner), **kwargs)


def traced_async_client(
    transport: httpx.AsyncBaseTransport | None = None, **kwargs: Any
) -> httpx.AsyncClient:
    """The asyncio twin of `traced_client`."""
    inner = transport if transport is not None else httpx.AsyncHTTPTransport(**_transport_options(kwargs))
    return httpx.AsyncClient(transport=AsyncTracedTransport(inner), **kwargs)

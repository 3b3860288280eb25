"""The apps the HTTP overhead benchmark serves: one trivial route, instrumented eight ways.

`BENCH_VARIANT` picks one; uvicorn imports `bench.apps:app`. Every traced variant exports to
an exporter that drops spans (the cost measured is the SDK's, not a network's), 100% sampled.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

VARIANTS = (
    "bare",
    "reference-minimal",
    "pilothouse-metrics",
    "pilothouse-metrics-sizes",
    "pilothouse-full",
    "pilothouse-traces",
    "starlette-exporter",
    "otel-asgi",
    "fastapi-bare",
    "fastapi-instrumentator",
    "protection-defaults",
    "protection-errors",
    "protection-headers",
    "protection-limits",
    "pilothouse-metrics-protection",
    "minimal-headers",
    "minimal-defaults",
    "minimal-defaults-timeout",
    "jwt-pilothouse",
    "jwt-minimal",
    "ratelimit-redis-pilothouse",
    "ratelimit-redis-minimal",
)
BASELINE = {
    "fastapi-instrumentator": "fastapi-bare",
    "pilothouse-metrics-protection": "pilothouse-metrics",
}
"""Each variant's ratio is against "bare" unless named here (FastAPI peers against FastAPI)."""


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def starlette_app() -> Starlette:
    return Starlette(routes=[Route("/items/{id}", hello)])


def fastapi_app() -> Any:
    from fastapi import FastAPI
    from fastapi.responses import PlainTextResponse as FastPlain

    app = FastAPI()

    @app.get("/items/{id}", response_class=FastPlain)
    async def item(id: str) -> str:
        return "ok"

    return app


class MinimalMetrics:
    """The issue's calibration point: a minimal pure-ASGI middleware doing one Histogram observe
    and one Counter inc per request (status from a `send` wrapper, no route, no method
    normalisation), so the harness shows what "almost free" measures as here."""

    def __init__(self, app: Any) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        registry = CollectorRegistry()
        self.app = app
        self.requests = Counter("minimal_requests", "Requests.", ["method"], registry=registry)
        self.duration = Histogram("minimal_duration_seconds", "Duration.", ["status"], registry=registry)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.requests.labels(scope["method"]).inc()
            self.duration.labels(str(status)).observe(time.perf_counter() - start)


SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
)
"""The three headers `[protection.headers]` adds by default to a plain-HTTP response."""


class MinimalHeaders:
    """Hand-written minimal equivalent of the security headers: appends three precomputed
    headers to every response start (does not look at the app's own headers)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_wrapper(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_wrapper)


class MinimalDefaults:
    """Hand-written minimal equivalent of the `[protection]` defaults in one layer: the three
    headers, a 500 without details for an exception raised before the response started, and
    the header count/size and declared body size checks (no metrics, no log). No time limit
    unless `time_limit` (seconds): then the app call runs under `asyncio.timeout`, as a user
    would write it, and a request past it is answered 504 if its response has not started
    ("minimal-defaults-timeout": what the time limit costs a hand-written layer)."""

    def __init__(
        self,
        app: Any,
        max_headers: int = 100,
        max_header_bytes: int = 65536,
        time_limit: float | None = None,
    ) -> None:
        self.app, self.max_headers, self.max_header_bytes = app, max_headers, max_header_bytes
        self.max_body = 10 * 2**20
        self.time_limit = time_limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope["headers"]
        size = 0
        for name, value in headers:
            size += len(name) + len(value)
            if name == b"content-length" and int(value) > self.max_body:
                size = self.max_header_bytes + 1
        if len(headers) > self.max_headers or size > self.max_header_bytes:
            await send({"type": "http.response.start", "status": 431, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        started = False

        async def send_wrapper(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", ()), *SECURITY_HEADERS]
            await send(message)

        try:
            if self.time_limit is None:
                await self.app(scope, receive, send_wrapper)
            else:
                async with asyncio.timeout(self.time_limit):
                    await self.app(scope, receive, send_wrapper)
        except TimeoutError:
            if started:
                raise
            await _bare_answer(send, 504)
        except Exception:
            if started:
                raise
            await _bare_answer(send, 500)


async def _bare_answer(send: Any, status: int) -> None:
    """An empty response with the security headers (the minimal layers' own answers)."""
    await send({"type": "http.response.start", "status": status, "headers": list(SECURITY_HEADERS)})
    await send({"type": "http.response.body", "body": b""})


def dropping_exporter() -> Any:
    """An SDK span exporter that drops what it is given (the cost measured is the
    instrumentation's, not a network's)."""
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class Drop(SpanExporter):
        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    return Drop()


def dropping_tracer_provider() -> None:
    """A global SDK provider, always sampling, batching into an exporter that drops spans."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(dropping_exporter()))
    trace.set_tracer_provider(provider)


PILOTHOUSE = {
    "pilothouse-metrics": {"traces": "none", "access_log": False, "request_id": False},
    "pilothouse-metrics-sizes": {
        "traces": "none",
        "access_log": False,
        "request_id": False,
        "body_size_metrics": True,
    },
    "pilothouse-full": {"traces": "otlp", "sample_ratio": 1.0, "log_format": "json", "access_log": True},
    "pilothouse-traces": {"traces": "otlp", "sample_ratio": 1.0, "log_format": "json", "access_log": False},
    # The cost of `keep_errors_and_slow` (not in VARIANTS: measured with `--variant`, see
    # docs/performance.md "OTLP encoding"): unsampled requests then get a recording span.
    "pilothouse-traces-10pct": {"traces": "otlp", "sample_ratio": 0.1, "access_log": False},
    "pilothouse-traces-10pct-keep": {
        "traces": "otlp",
        "sample_ratio": 0.1,
        "keep_errors_and_slow": True,
        "access_log": False,
    },
}
"""Pilothouse as `serve` sets it up. metrics: metrics only (metrics-sizes: with the body size
histograms). full: metrics + one server span per request (100 %, batched into the dropping
exporter) + request id + JSON logs with the JSON access line. traces: the same without the
access line (the issue's "access log off")."""


def pilothouse_app(variant: str, protection: bool = False) -> Any:
    """The app as `serve` wraps it with these `[telemetry]` settings; `protection`: with the
    `[protection]` defaults too (else that section's parts are off, as before it existed)."""
    from pilothouse.config.model import Config
    from pilothouse.protection import feature as protection_feature
    from pilothouse.runtime.runtime import Runtime
    from pilothouse.telemetry import feature, tracing

    telemetry = PILOTHOUSE[variant]
    config = Config.model_validate({"service": {"name": "bench"}, "telemetry": telemetry})
    if telemetry["traces"] != "none":
        tracing.setup_tracing(config, exporter=dropping_exporter())  # install keeps this provider
    runtime = Runtime(config)
    feature.install(runtime)
    if protection:
        protection_feature.install(runtime)
    return runtime.wrap(starlette_app())


PROTECTION_PARTS = {
    "protection-errors": "errors",
    "protection-headers": "headers",
    "protection-limits": "limits",
}
"""Ablation: one default part of `[protection]` on, the other two off."""


def protection_app(only: str | None = None) -> Any:
    """The `[protection]` defaults (safe errors, security headers, limits and the 60 s time
    limit) alone around the bare app: their cost, without telemetry or the in-flight layer;
    `only`: just that part."""
    from pilothouse.config.model import Config
    from pilothouse.metrics import Metrics
    from pilothouse.protection.middleware import ProtectionMiddleware

    parts = {} if only is None else {p: {"enabled": p == only} for p in PROTECTION_PARTS.values()}
    config = Config.model_validate({"service": {"name": "bench"}, "protection": parts})
    return ProtectionMiddleware(starlette_app(), config.protection, Metrics())


def build(variant: str) -> Any:
    if variant == "bare":
        return starlette_app()
    if variant == "reference-minimal":
        return MinimalMetrics(starlette_app())
    if variant in PILOTHOUSE:
        return pilothouse_app(variant)
    if variant == "protection-defaults":
        return protection_app()
    if variant in PROTECTION_PARTS:
        return protection_app(PROTECTION_PARTS[variant])
    if variant == "minimal-headers":
        return MinimalHeaders(starlette_app())
    if variant == "minimal-defaults":
        return MinimalDefaults(starlette_app())
    if variant == "minimal-defaults-timeout":  # the 60 s default of `[protection.limits]`
        return MinimalDefaults(starlette_app(), time_limit=60.0)
    if variant.startswith("jwt-"):  # the token for the client: in the file BENCH_TOKEN_FILE names
        from bench.protection_cost import jwt_apps

        ours, minimal, token = jwt_apps(starlette_app(), paths=("/items/*",))
        with open(os.environ["BENCH_TOKEN_FILE"], "w") as file:
            file.write(token)
        return ours if variant == "jwt-pilothouse" else minimal
    if variant.startswith("ratelimit-redis-"):  # keys under a unique prefix, expiring in a minute
        import uuid

        from bench.protection_cost import redis_apps

        ours, minimal, _ = redis_apps(starlette_app(), f"bench-serve-{uuid.uuid4().hex}")
        return ours if variant == "ratelimit-redis-pilothouse" else minimal
    if variant == "pilothouse-metrics-protection":
        return pilothouse_app("pilothouse-metrics", protection=True)
    if variant == "starlette-exporter":
        from starlette_exporter import PrometheusMiddleware

        app = starlette_app()
        app.add_middleware(PrometheusMiddleware)
        return app
    if variant == "otel-asgi":
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

        dropping_tracer_provider()
        return OpenTelemetryMiddleware(starlette_app())
    if variant == "otel-asgi-otlp":  # bench/serve_variants.py: the real exporter, to its receiver
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider()  # endpoint and batching from the OTEL_* environment
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)
        return OpenTelemetryMiddleware(starlette_app())
    if variant == "fastapi-bare":
        return fastapi_app()
    if variant == "fastapi-instrumentator":
        from prometheus_fastapi_instrumentator import Instrumentator

        app = fastapi_app()
        Instrumentator().instrument(app)
        return app
    raise SystemExit(f"BENCH_VARIANT: unknown {variant!r}; one of {', '.join(VARIANTS)}")


if __name__ != "__main__" and os.environ.get("BENCH_VARIANT"):
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    app = build(os.environ["BENCH_VARIANT"])

"""`keep_errors_and_slow`: with ratio sampling (parent-based), the server spans the ratio left
out are still exported when they end as errors (5xx, exception) or slower than the SLO latency
threshold; the rest stay out. Against the real SDK pipeline, and through `pilothouse serve` to a
real OTLP receiver."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from pilothouse.config.telemetry import TelemetryConfig
from pilothouse.telemetry.middleware import TelemetryMiddleware
from pilothouse.telemetry.server_span import ServerSpanStarter
from tests.helpers import ServeProcess
from tests.telemetry.conftest import HttpReceiver
from tests.telemetry.test_middleware import _call

SLOW_AFTER = 0.5  # seconds; /slow sleeps longer, the others return at once
UNSAMPLED_PARENT = b"00-5bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"


async def ok(request: Request) -> PlainTextResponse:
    with request.app.state.provider.get_tracer("app").start_as_current_span("child"):
        pass
    return PlainTextResponse("ok")


async def unavailable(request: Request) -> PlainTextResponse:
    return PlainTextResponse("down", status_code=503)


async def missing(request: Request) -> PlainTextResponse:
    return PlainTextResponse("no", status_code=404)


async def boom(request: Request) -> PlainTextResponse:
    raise ValueError("broken")


async def slow(request: Request) -> PlainTextResponse:
    await asyncio.sleep(SLOW_AFTER + 0.2)
    return PlainTextResponse("late")


def _setup(keep: bool, ratio: float = 0.0) -> tuple[Any, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    routes = [
        Route("/ok", ok),
        Route("/503", unavailable),
        Route("/404", missing),
        Route("/boom", boom),
        Route("/slow", slow),
    ]
    app = Starlette(routes=routes)
    app.state.provider = provider
    starter = ServerSpanStarter(
        provider.get_tracer("pilothouse"),
        ratio,
        keep_errors_and_slow=keep,
        slow_after=SLOW_AFTER,  # type: ignore[arg-type]
    )
    telemetry = TelemetryConfig(access_log=False)
    middleware = TelemetryMiddleware(app, metrics=None, telemetry=telemetry, spans=starter)
    return middleware, exporter


async def _exported(
    app: Any, exporter: InMemorySpanExporter, path: str, headers: list[tuple[bytes, bytes]] | None = None
) -> list[Any]:
    exporter.clear()
    with contextlib.suppress(ValueError):  # /boom: the app's exception reaches the server
        await _call(app, "GET", path, headers)
    return list(exporter.get_finished_spans())


async def test_errors_and_slow_requests_are_kept_the_rest_sampled_out() -> None:
    app, exporter = _setup(keep=True)
    assert await _exported(app, exporter, "/ok") == []  # the ratio (0) says no, and it went well
    assert await _exported(app, exporter, "/404") == []  # a client error is not the service's
    (failed,) = await _exported(app, exporter, "/503")
    assert failed.status.status_code is trace.StatusCode.ERROR
    assert failed.context.trace_flags.sampled  # exported as sampled
    (raised,) = await _exported(app, exporter, "/boom")
    assert raised.events[0].name == "exception"
    (late,) = await _exported(app, exporter, "/slow")
    assert late.name == "GET /slow" and late.status.status_code is trace.StatusCode.UNSET


async def test_the_decision_stays_the_parents_for_the_request_it_passes_on() -> None:
    """Unsampled at the start: the response's traceparent and the children say so (a decision
    at the end cannot recall them); the span itself, a local root, is kept when it failed."""
    app, exporter = _setup(keep=True)
    exporter.clear()
    status, headers = await _call(app, "GET", "/ok", [(b"traceparent", UNSAMPLED_PARENT)])
    assert status == 200 and headers[b"traceparent"].endswith(b"-00")
    assert exporter.get_finished_spans() == ()  # not the server span, not its child
    (failed,) = await _exported(app, exporter, "/503", [(b"traceparent", UNSAMPLED_PARENT)])
    assert failed.parent is not None and format(failed.parent.span_id, "016x") == "00f067aa0ba902b7"


async def test_without_the_option_the_ratio_alone_decides() -> None:
    app, exporter = _setup(keep=False)
    for path in ("/ok", "/503", "/boom"):
        assert await _exported(app, exporter, path) == [], path


async def test_sampled_requests_are_unaffected() -> None:
    app, exporter = _setup(keep=True, ratio=1.0)
    names = {span.name for span in await _exported(app, exporter, "/ok")}
    assert names == {"GET /ok", "child"}


def test_through_serve_only_the_failed_and_slow_reach_the_receiver(
    http_receiver: HttpReceiver, config_factory: Callable[..., Path], serve_env: dict[str, str]
) -> None:
    """`[telemetry] keep_errors_and_slow` with `[slo.latency].threshold` as a user writes them."""
    config = config_factory(
        'traces = "otlp"\nsample_ratio = 0.0\nkeep_errors_and_slow = true',
        '[slo]\nlatency = { threshold = "500ms", target = 0.99 }',
    )
    env = {
        **serve_env,
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{http_receiver.port}",
        "OTEL_BSP_SCHEDULE_DELAY": "10",
    }
    serve = ServeProcess(config, env=env).start()
    try:
        with httpx.Client(base_url=serve.app_url, timeout=30) as client:
            assert client.get("/items/1").status_code == 200
            assert client.get("/items/2", params={"status": "503"}).status_code == 503
            assert client.get("/items/3", params={"sleep": "0.7"}).status_code == 200
            assert client.get("/items/4").status_code == 200
        serve.signal(signal.SIGTERM)  # the shutdown flush sends whatever is left
        assert serve.wait(60) == 0, serve.output
    finally:
        serve.stop()
    paths = {
        kv.value.string_value
        for _, request in http_receiver.requests
        for resource in request.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
        for kv in span.attributes
        if kv.key == "url.path"
    }
    assert paths == {"/items/2", "/items/3"}

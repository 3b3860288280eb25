"""`install(runtime)`: the telemetry feature (listed in `pilothouse.runtime.features`).

Logs are routed first (so everything after is formatted), then the tracer provider is set up
and flushed at shutdown, process metrics are registered, and the helpers are bound to the
runtime's registry. The per-request middleware and the scrape are registered with the runtime
(`install_middleware`), which applies them in `Runtime.wrap` and `Runtime.exposition`.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from prometheus_client import REGISTRY
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from pilothouse.runtime.asgi import ASGIApp
from pilothouse.runtime.inflight import InFlightMiddleware
from pilothouse.runtime.multiprocess import scrape_registry
from pilothouse.telemetry.logs import configure_logging, flush_logs
from pilothouse.telemetry.middleware import TelemetryMiddleware
from pilothouse.telemetry.state import state
from pilothouse.telemetry.tracing import (
    flush_on_shutdown,
    server_span_starter,
    setup_tracing,
    warn_of_a_second_exporter,
)

if TYPE_CHECKING:
    from pilothouse.runtime.runtime import Runtime


def install(runtime: Runtime) -> None:
    config = runtime.config
    configure_logging(config)
    runtime.on_flush(flush_logs)
    provider = setup_tracing(config, metrics=runtime.metrics if config.telemetry.metrics else None)
    if provider is not None:
        flush_on_shutdown(runtime, provider)
        warn_of_a_second_exporter()
    if config.telemetry.metrics:
        registry = runtime.metrics.registry
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
    state.bind(runtime.metrics, config.telemetry.correlation_attribute, frozenset(config.monitoring.helpers))
    install_middleware(runtime)


def install_middleware(runtime: Runtime) -> None:
    """Register the request middleware and the (multiprocess-aware) scrape with `runtime`:
    the runtime never imports telemetry; telemetry plugs into the runtime."""
    runtime.add_middleware(lambda app: build_middleware(runtime, app))
    app = REGISTRY if runtime.config.telemetry.app_metrics else None
    runtime.set_scrape(functools.partial(scrape_registry, app=app))


def build_middleware(runtime: Runtime, app: ASGIApp) -> TelemetryMiddleware:
    """The request middleware for `runtime`: its metrics, tracer and `[telemetry]` switches."""
    telemetry = runtime.config.telemetry
    if isinstance(app, InFlightMiddleware):
        app.outer_tracks_start = True  # TelemetryMiddleware marks the response start in the scope
    return TelemetryMiddleware(
        app,
        metrics=runtime.metrics if telemetry.metrics else None,
        telemetry=telemetry,
        spans=server_span_starter(runtime.config),
    )

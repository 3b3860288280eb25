"""The process's OpenTelemetry tracer provider, built from `[telemetry]`.

One global provider per process (the OpenTelemetry API allows setting it once), so app code and
other features (jobs) create spans with `opentelemetry.trace.get_tracer(...)` and they land in
the same exporter. Spans are batched off the request path and flushed in the shutdown's flush
step. The SDK is optional (`pilothouse[traces]`) and imported only when traces are on.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from pilothouse.errors import ConfigError

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

    from pilothouse.config.model import Config
    from pilothouse.metrics import Metrics
    from pilothouse.runtime.runtime import Runtime
    from pilothouse.telemetry.server_span import ServerSpanStarter

log = logging.getLogger("pilothouse.telemetry")

TRACER_NAME = "pilothouse"

# The provider setup_tracing built and its sample ratio: its sampler is known
# (ParentBased(TraceIdRatioBased(ratio))), so server spans decide sampling without calling it.
_own: tuple[TracerProvider, float] | None = None
# The starter `server_span_starter` built last and its provider: servers other than the ASGI
# middleware (gRPC) start their spans with the same sampling settings.
_starter: tuple[TracerProvider, ServerSpanStarter] | None = None


def _exporter(config: Config) -> SpanExporter:
    telemetry = config.telemetry
    if telemetry.traces == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter(service_name=config.service.name)
    from pilothouse.telemetry.otlp_export import OtlpExporter, OtlpSettings

    # The file's `otlp_protocol` when it sets one, else `OTEL_EXPORTER_OTLP_PROTOCOL` (the variable
    # a collector's injector or operator sets beside the endpoint).
    explicit = "otlp_protocol" in telemetry.model_fields_set
    return OtlpExporter(OtlpSettings.from_env(telemetry.otlp_protocol if explicit else None))


def _drop_counter(metrics: Metrics | None) -> Callable[[str, int], None] | None:
    """`on_drop` for the batch exporter: the `pilothouse_spans_dropped` counter, by reason."""
    if metrics is None:
        return None
    from pilothouse.catalog.telemetry import SPAN_DROP_REASONS, SPANS_DROPPED

    counter = metrics.counter(SPANS_DROPPED)
    children = {reason: counter.labels(reason) for reason in SPAN_DROP_REASONS}

    def dropped(reason: str, count: int) -> None:
        children[reason].inc(count)

    return dropped


def setup_tracing(
    config: Config, exporter: SpanExporter | None = None, metrics: Metrics | None = None
) -> TracerProvider | None:
    """Install the global tracer provider for `[telemetry].traces`; None when traces are off.

    When a provider is already installed (the app or a test set one up), it is kept and
    returned, so Pilothouse's spans join the app's own pipeline instead of a second one.
    `exporter` replaces the configured one (benchmarks, tests). Spans dropped (export queue
    full, batch given up) are counted in `metrics` when given.
    """
    global _own
    telemetry = config.telemetry
    if telemetry.traces == "none":
        return None
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
    except ImportError:
        raise ConfigError(
            f"telemetry.traces: {telemetry.traces!r} needs the OpenTelemetry SDK: "
            "pip install 'pilothouse[traces]'"
        ) from None
    from pilothouse.telemetry.batch import BatchExport, make_room_for_batch

    existing = trace.get_tracer_provider()
    if isinstance(existing, TracerProvider):
        log.info("traces: using the tracer provider already installed in this process")
        return existing
    provider = TracerProvider(
        resource=Resource.create(
            {"service.name": config.service.name, "service.version": config.service.version}
        ),
        sampler=ParentBased(TraceIdRatioBased(telemetry.sample_ratio)),
    )
    batches = BatchExport(
        exporter or _exporter(config),
        flush_timeout=config.lifecycle.flush_timeout,
        on_drop=_drop_counter(metrics),
    )
    provider.add_span_processor(batches)
    trace.set_tracer_provider(provider)
    if telemetry.gc_room_for_spans and (raised := make_room_for_batch(batches.batch_size)):
        log.info(
            "gc: young-generation threshold %d -> %d, room for one span export batch of %d",
            *raised,
            batches.batch_size,
        )
    _own = (provider, telemetry.sample_ratio)
    return provider


def warn_of_a_second_exporter() -> None:
    """FastAPI's `FASTAPI_OTEL_AUTO_CONFIGURE=true` adds a `BatchSpanProcessor` with an OTLP
    exporter of its own to the global tracer provider when the app starts ("FastAPI preserves
    existing providers and their exporters. Environment setup can add exporters", its
    `TelemetryConfig`): with Pilothouse's provider that exports every span a second time, to the
    same `OTEL_EXPORTER_OTLP_ENDPOINT`. FastAPI's own docs: "If another library already configures
    export to the same destination, leave FASTAPI_OTEL_AUTO_CONFIGURE unset"."""
    if os.environ.get("FASTAPI_OTEL_AUTO_CONFIGURE", "").strip().lower() == "true":
        log.warning(
            "FASTAPI_OTEL_AUTO_CONFIGURE=true makes FastAPI add an OTLP exporter of its own to the "
            "tracer provider Pilothouse exports with ([telemetry].traces): every span would be "
            "exported twice; unset it"
        )


def server_span_starter(config: Config) -> ServerSpanStarter | None:
    """What starts the server spans, or None when traces are off (the middleware then skips all
    span work instead of paying for no-op spans)."""
    if config.telemetry.traces == "none":
        return None
    from opentelemetry import trace
    from opentelemetry.sdk.trace import Tracer, TracerProvider

    from pilothouse.telemetry.server_span import ServerSpanStarter

    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):  # an API-only provider: nothing would record
        return None
    tracer = provider.get_tracer(TRACER_NAME)
    if not isinstance(tracer, Tracer):  # OTEL_SDK_DISABLED: a no-op tracer
        return None
    global _starter
    telemetry, latency = config.telemetry, config.slo.latency
    starter = ServerSpanStarter(
        tracer,
        _own[1] if _own is not None and _own[0] is provider else None,
        keep_errors_and_slow=telemetry.keep_errors_and_slow,
        slow_after=latency.threshold if latency is not None else None,
    )
    _starter = (provider, starter)
    return starter


def current_server_span_starter() -> ServerSpanStarter | None:
    """What starts server spans outside the HTTP middleware (the gRPC interceptors): the starter
    `server_span_starter` built for the installed provider (same sampling, `keep_errors_and_slow`
    and slow threshold as the HTTP server spans), else one for whatever SDK provider is installed
    (its own sampler decides), else None (no SDK, or an API-only provider: nothing would record)."""
    global _starter
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import Tracer, TracerProvider
    except ImportError:  # pragma: no cover - exercised only without the traces extra
        return None
    provider = trace.get_tracer_provider()
    if _starter is not None and _starter[0] is provider:
        return _starter[1]
    if not isinstance(provider, TracerProvider):
        return None
    tracer = provider.get_tracer(TRACER_NAME)
    if not isinstance(tracer, Tracer):
        return None
    from pilothouse.telemetry.server_span import ServerSpanStarter

    ratio = _own[1] if _own is not None and _own[0] is provider else None
    _starter = (provider, ServerSpanStarter(tracer, ratio))
    return _starter[1]


def flush_on_shutdown(runtime: Runtime, provider: TracerProvider) -> None:
    """Export every finished span in the lifecycle's flush step (off the event loop: the
    export blocks on network I/O), giving up at `[lifecycle].flush_timeout`."""

    timeout_millis = int(runtime.config.lifecycle.flush_timeout * 1000)

    async def flush() -> None:
        await asyncio.to_thread(provider.force_flush, timeout_millis)

    runtime.on_flush(flush)

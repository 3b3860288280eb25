"""`[telemetry]`: metrics, traces and logs."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from pilothouse.config.base import Section


class TelemetryConfig(Section):
    """What the runtime emits. The OTLP endpoint comes from OTEL_EXPORTER_OTLP_ENDPOINT."""

    metrics: bool = True
    traces: Literal["otlp", "console", "none"] = "none"
    sample_ratio: Annotated[float, Field(ge=0.0, le=1.0)] = 1.0
    log_format: Literal["json", "text"] = "json"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    access_log: bool = True
    correlation_header: str | None = None

"""`[telemetry]`: metrics, traces and logs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, field_validator

from pilothouse.config.base import Section

_HEADER = re.compile(r"[A-Za-z0-9-]+")
_ATTRIBUTE = re.compile(r"^[a-z][a-z0-9_.]*$")


def _path(value: object) -> object:
    """A TOML string is a path: strict validation alone would insist on a Path object."""
    return Path(value) if isinstance(value, str) else value


class TelemetryConfig(Section):
    """What the runtime emits. The OTLP endpoint comes from OTEL_EXPORTER_OTLP_ENDPOINT (the
    OpenTelemetry convention, so a collector sidecar or operator can set it without the file)."""

    metrics: bool = True
    traces: Literal["otlp", "console", "none"] = "none"
    otlp_protocol: Literal["http", "grpc"] = "http"
    sample_ratio: Annotated[float, Field(ge=0.0, le=1.0)] = 1.0
    keep_errors_and_slow: bool = Field(
        default=False,
        description="below sample_ratio 1: also export the server spans the ratio left out that end "
        "as errors (5xx, exception) or slower than [slo.latency].threshold, decided at the span's end",
    )
    # Raise the interpreter's young-generation GC threshold by one span export batch
    # (telemetry/batch.py `make_room_for_batch`); false leaves the collector's settings alone.
    gc_room_for_spans: bool = True
    log_format: Literal["json", "text"] = "json"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    access_log: bool = True
    app_metrics: bool = Field(
        default=True,
        description="serve the app's own prometheus_client metrics (default REGISTRY, or every "
        "worker's in multiprocess mode) on the ops /metrics beside Pilothouse's",
    )
    body_size_metrics: bool = False  # request/response body size histograms (~+1.4 µs a request)
    request_id: bool = True
    request_id_header: str = "X-Request-ID"
    correlation_header: str | None = None
    correlation_attribute: str = "correlation_id"
    multiprocess_dir: Annotated[Path | None, BeforeValidator(_path)] = None

    @field_validator("request_id_header", "correlation_header")
    @classmethod
    def _header_name(cls, value: str | None) -> str | None:
        if value is not None and not _HEADER.fullmatch(value):
            raise ValueError("expected an HTTP header name such as 'X-Transaction-ID'")
        return value

    @field_validator("correlation_attribute")
    @classmethod
    def _attribute_name(cls, value: str) -> str:
        if not _ATTRIBUTE.match(value):
            raise ValueError("expected a lowercase attribute name such as 'app.transaction_id'")
        return value

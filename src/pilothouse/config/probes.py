"""`[probes]`: probe paths on the ops port, and how long and how often checks may run."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator, model_validator

from pilothouse.config.base import Section
from pilothouse.durations import Duration


def _path(value: str) -> str:
    if not value.startswith("/") or any(c in value for c in " ?#"):
        raise ValueError("expected an absolute URL path such as '/health'")
    return value


ProbePath = Annotated[str, Field(min_length=1)]


class ProbesConfig(Section):
    """Probe paths on the ops port, and how long and how often checks may run."""

    liveness_path: ProbePath = "/health"
    readiness_path: ProbePath = "/ready"
    startup_path: ProbePath = "/startup"
    status_path: ProbePath = "/status"
    metrics_path: ProbePath = "/metrics"
    check_timeout: Duration = 1.0
    cache_ttl: Duration = 1.0

    _paths = field_validator(
        "liveness_path", "readiness_path", "startup_path", "status_path", "metrics_path"
    )(_path)

    @model_validator(mode="after")
    def _distinct(self) -> ProbesConfig:
        paths = [
            self.liveness_path,
            self.readiness_path,
            self.startup_path,
            self.status_path,
            self.metrics_path,
        ]
        if len(set(paths)) != len(paths) or any(p.startswith("/admin") for p in paths):
            raise ValueError("probe paths must be distinct and outside /admin")
        if self.check_timeout <= 0:
            raise ValueError("check_timeout must be greater than 0s")
        return self

"""`[service]`, `[ops]`, `[probes]` and `[lifecycle]`: what the runtime serves and how it stops."""

from __future__ import annotations

import math
import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from pilothouse.config.base import Section
from pilothouse.durations import Duration

Port = Annotated[int, Field(ge=1, le=65535, description="a TCP port, 1-65535")]

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_APP_REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")


def _positive(value: float) -> float:
    if value <= 0:
        raise ValueError("expected a duration greater than 0s")
    return value


class ServiceConfig(Section):
    """The service itself: its name is the Kubernetes name, metric job and log field."""

    name: str
    app: str | None = Field(default=None, description="ASGI app, 'package.module:attribute'")
    version: str = "0.0.0"
    host: str = "0.0.0.0"
    port: Port = 8080
    header_timeout: Duration = Field(default=10.0, description="time to send a request's headers")
    idle_timeout: Duration = Field(default=5.0, description="idle connection (before and between requests)")
    max_connections: Annotated[int, Field(ge=1, description="open connections on the app port")] = 1000
    http: Literal["auto", "h11", "httptools"] = Field(
        default="auto",
        description="HTTP parser of both ports: httptools (C, the `fast` extra) when installed, else "
        "h11 (pure Python, about 2.5 times the instructions a request); `serve --http` overrides",
    )
    loop: Literal["auto", "asyncio", "uvloop"] = Field(
        default="auto",
        description="event loop: uvloop when installed (the `fast` extra), else asyncio; "
        "`serve --loop` overrides",
    )

    _timeouts = field_validator("header_timeout", "idle_timeout")(_positive)

    state_dir: str | None = Field(
        default=None,
        description="where the service writes state (a SQLite job store, caches), relative to the "
        "config file; default: the config file's directory. Deploy bundles set it to a writable volume",
    )

    @field_validator("name")
    @classmethod
    def _dns_label(cls, value: str) -> str:
        if len(value) > 63 or not _DNS1123_LABEL.match(value):
            raise ValueError(
                "expected a DNS-1123 label: lowercase letters, digits and '-', "
                "starting and ending with a letter or digit, at most 63 characters"
            )
        return value

    @field_validator("app")
    @classmethod
    def _app_ref(cls, value: str | None) -> str | None:
        if value is not None and not _APP_REF.match(value):
            raise ValueError("expected 'package.module:attribute', e.g. 'shop.app:app'")
        return value


class OpsConfig(Section):
    """The operations port: health, readiness, status, metrics and admin. Never the app port."""

    host: str = "0.0.0.0"
    port: Port = 9090
    header_timeout: Duration = Field(default=5.0, description="time to send a request's headers")
    idle_timeout: Duration = Field(default=5.0, description="idle connection (before and between requests)")
    max_connections: Annotated[int, Field(ge=1, description="open connections on the ops port")] = 64

    _timeouts = field_validator("header_timeout", "idle_timeout")(_positive)
    admin_token_env: str = "PILOTHOUSE_ADMIN_TOKEN"  # noqa: S105 - a variable name, not a token

    @field_validator("admin_token_env")
    @classmethod
    def _env_name(cls, value: str) -> str:
        if not _ENV_NAME.match(value):
            raise ValueError("expected an environment variable name such as 'SHOP_ADMIN_TOKEN'")
        return value


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


STOP_MARGIN_SECONDS = 5
"""Slack between the worst-case shutdown and the kill, for every target (the one place it lives)."""


class LifecycleConfig(Section):
    """Graceful shutdown: fail readiness, wait for load balancers, drain, flush, exit.

    The pod's grace period is derived, never configured: it must cover the pre-stop delay, the
    drain and the flush, or the kubelet kills the process mid-drain.
    """

    pre_stop_delay: Duration = 5.0
    drain_timeout: Duration = 20.0
    flush_timeout: Duration = 3.0
    startup_timeout: Duration = 60.0

    @property
    def shutdown_budget(self) -> float:
        """Seconds from SIGTERM to exit in the worst case (pre-stop wait, drain, flush)."""
        return self.pre_stop_delay + self.drain_timeout + self.flush_timeout

    @property
    def hard_exit_after(self) -> float:
        """Seconds from SIGTERM to the runtime's forced exit if shutdown is stuck: the budget plus
        3 s, inside the margin the stop timeouts add (STOP_MARGIN_SECONDS)."""
        return self.shutdown_budget + 3

    @property
    def stop_timeout_seconds(self) -> int:
        """SIGTERM to SIGKILL where nothing runs before SIGTERM (compose `stop_grace_period`,
        systemd `TimeoutStopSec`): the shutdown budget plus the margin."""
        return math.ceil(self.shutdown_budget + STOP_MARGIN_SECONDS)

    @property
    def pre_stop_hook_seconds(self) -> int:
        """The Kubernetes preStop hook sleeps the pre-stop delay so endpoints go before SIGTERM."""
        return math.ceil(self.pre_stop_delay)

    @property
    def pod_grace_period_seconds(self) -> int:
        """The pod's `terminationGracePeriodSeconds`: the kubelet counts the preStop hook inside
        it, so it is the hook's sleep plus the stop timeout."""
        return self.pre_stop_hook_seconds + self.stop_timeout_seconds

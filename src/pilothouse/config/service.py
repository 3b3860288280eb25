"""`[service]`: the service itself, its app and its port. `[ops]`, `[probes]` and `[lifecycle]`
are in `ops.py`, `probes.py` and `lifecycle.py`."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator

from pilothouse.config.base import Port, Section, positive_duration
from pilothouse.durations import Duration

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_APP_REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


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

    _timeouts = field_validator("header_timeout", "idle_timeout")(positive_duration)

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

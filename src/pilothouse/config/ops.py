"""`[ops]`: the operations port (health, readiness, status, metrics, admin)."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field, field_validator

from pilothouse.config.base import Port, Section, positive_duration
from pilothouse.durations import Duration

_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")


class OpsConfig(Section):
    """The operations port: health, readiness, status, metrics and admin. Never the app port."""

    host: str = "0.0.0.0"
    port: Port = 9090
    header_timeout: Duration = Field(default=5.0, description="time to send a request's headers")
    idle_timeout: Duration = Field(default=5.0, description="idle connection (before and between requests)")
    max_connections: Annotated[int, Field(ge=1, description="open connections on the ops port")] = 64

    _timeouts = field_validator("header_timeout", "idle_timeout")(positive_duration)
    admin_token_env: str = "PILOTHOUSE_ADMIN_TOKEN"  # noqa: S105 - a variable name, not a token

    @field_validator("admin_token_env")
    @classmethod
    def _env_name(cls, value: str) -> str:
        if not _ENV_NAME.match(value):
            raise ValueError("expected an environment variable name such as 'SHOP_ADMIN_TOKEN'")
        return value

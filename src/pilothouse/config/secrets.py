"""`[secrets]`: where secret references are looked up, in order (first hit wins)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pilothouse.config.base import Section

SourceName = Literal["kubernetes", "env", "file", "vault"]


class SecretsConfig(Section):
    sources: list[SourceName] = Field(default_factory=lambda: list[SourceName](["kubernetes", "env"]))
    mount_dir: str = "/var/run/secrets/pilothouse"
    file: str | None = None

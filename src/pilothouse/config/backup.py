"""`[backup]`: what `pilothouse backup` saves with restic, where, and how long it is kept.

The repository password is a secret reference (never a literal); the repository is a local path.
Targets are named: `pilothouse backup run --only db` picks them by name.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from pilothouse.config.base import Section
from pilothouse.config.secret_ref import SecretRef, url_of
from pilothouse.durations import Duration

_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")
Keep = Annotated[int, Field(ge=0, le=1000)]


class BackupTarget(Section):
    """One thing to back up: a PostgreSQL database, a directory, the job store, the config."""

    name: str = Field(description="target name (letters, digits, '-')")
    kind: Literal["postgres", "directory", "job_store", "config"]
    url: str | SecretRef | None = Field(default=None, description="postgres: the database URL")
    path: str | None = Field(default=None, description="directory: an absolute path")
    bundle: str | None = Field(default=None, description="config: a generated bundle directory too")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | SecretRef | None) -> str | SecretRef | None:
        return None if value is None else url_of("postgresql", "postgres")(value)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("expected lowercase letters, digits and '-' (at most 32 characters)")
        return value

    @model_validator(mode="after")
    def _fields(self) -> BackupTarget:
        if self.kind == "postgres" and self.url is None:
            raise ValueError(f"target '{self.name}': kind 'postgres' needs `url`")
        if self.kind == "directory" and (self.path is None or not self.path.startswith("/")):
            raise ValueError(f"target '{self.name}': kind 'directory' needs an absolute `path`")
        return self


class BackupConfig(Section):
    """Repository, password, retention and targets."""

    repository: str = Field(description="restic repository: an absolute local path")
    password: SecretRef = Field(description="the repository password (a secret reference)")
    restic: str = Field(default="restic", description="the restic binary")
    keep_daily: Keep = 7
    keep_weekly: Keep = 4
    keep_monthly: Keep = 6
    verify_subset: str = Field(default="5%", description="restic check --read-data-subset")
    alert_after: Duration = Field(default=93600.0, description="BackupTooOld fires past this age (26h)")
    targets: list[BackupTarget] = Field(default_factory=list)

    @field_validator("repository")
    @classmethod
    def _repository(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("expected an absolute path such as '/var/backups/shop'")
        return value

    @model_validator(mode="after")
    def _unique(self) -> BackupConfig:
        names = [t.name for t in self.targets]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"backup target names must be unique; repeated: {', '.join(repeated)}")
        return self

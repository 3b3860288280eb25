"""`[backup]`: what `pilothouse backup` saves with restic, where, and how long it is kept.

The repository password is a secret reference (never a literal); the repository is a local path
or, offsite, an S3-compatible bucket (`s3:https://host/bucket/prefix`, restic's form) whose keys
are secret references too (`[backup.s3]`). Targets are named: `pilothouse backup run --only db`
picks them by name.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from pilothouse.config.base import Section
from pilothouse.config.secret_ref import SecretRef, http_url, url_of
from pilothouse.durations import Duration

_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")
Keep = Annotated[int, Field(ge=0, le=1000)]


class BackupTarget(Section):
    """One thing to back up: a PostgreSQL database, a directory, a log directory, Prometheus's
    TSDB (a snapshot through its admin API), the job store, the config."""

    name: str = Field(description="target name (letters, digits, '-')")
    kind: Literal["postgres", "directory", "logs", "prometheus", "job_store", "config"]
    url: str | SecretRef | None = Field(
        default=None, description="postgres: the database URL; prometheus: its HTTP URL (admin API on)"
    )
    path: str | None = Field(
        default=None,
        description="directory/logs: an absolute path; prometheus: its --storage.tsdb.path as seen here",
    )
    pattern: str = Field(default="*", description="logs: the files to keep (a glob, e.g. '*.log*')")
    active: str = Field(
        default="*.log", description="logs: the files being written, which the generated logrotate rotates"
    )
    rotate: int = Field(default=14, ge=1, le=1000, description="logs: rotated files logrotate keeps (days)")
    query: str | None = Field(
        default=None, description="prometheus: a PromQL query restore-test expects an answer to"
    )
    bundle: str | None = Field(default=None, description="config: a generated bundle directory too")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | SecretRef | None) -> str | SecretRef | None:
        if value is None or (isinstance(value, str) and value.startswith(("http://", "https://"))):
            return value if value is None else http_url(value)
        return url_of("postgresql", "postgres")(value)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("expected lowercase letters, digits and '-' (at most 32 characters)")
        return value

    @model_validator(mode="after")
    def _fields(self) -> BackupTarget:
        web = isinstance(self.url, str) and self.url.startswith(("http://", "https://"))
        if self.kind == "postgres" and (self.url is None or web):
            raise ValueError(f"target '{self.name}': kind 'postgres' needs a postgresql:// `url`")
        if self.kind == "prometheus" and not web:
            raise ValueError(f"target '{self.name}': kind 'prometheus' needs its http:// `url`")
        if self.kind in ("directory", "logs", "prometheus") and (
            self.path is None or not self.path.startswith("/")
        ):
            raise ValueError(f"target '{self.name}': kind '{self.kind}' needs an absolute `path`")
        return self


S3_PREFIX = "s3:"
_S3 = re.compile(r"^s3:https?://[^/\s]+/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/\S*)?$")


class S3Credentials(Section):
    """The keys of an S3-compatible repository, as secret references (restic reads them from its
    environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION)."""

    access_key_id: SecretRef = Field(description="the access key id (a secret reference)")
    secret_access_key: SecretRef = Field(description="the secret access key (a secret reference)")
    region: str | None = Field(default=None, description="the bucket's region, when the endpoint needs one")


class BackupConfig(Section):
    """Repository, password, retention and targets."""

    repository: str = Field(
        description="restic repository: an absolute local path or 's3:https://host/bucket/prefix'"
    )
    password: SecretRef = Field(description="the repository password (a secret reference)")
    s3: S3Credentials | None = Field(default=None, description="keys of an S3 repository")
    restic: str = Field(default="restic", description="the restic binary")
    prometheus: str = Field(
        default="prometheus", description="the Prometheus binary restore-test opens a TSDB snapshot with"
    )
    keep_daily: Keep = 7
    keep_weekly: Keep = 4
    keep_monthly: Keep = 6
    verify_subset: str = Field(default="5%", description="restic check --read-data-subset")
    alert_after: Duration = Field(default=93600.0, description="BackupTooOld fires past this age (26h)")
    targets: list[BackupTarget] = Field(default_factory=list)

    @field_validator("repository")
    @classmethod
    def _repository(cls, value: str) -> str:
        if value.startswith(S3_PREFIX):
            if not _S3.match(value):
                raise ValueError("expected 's3:https://host[:port]/bucket[/prefix]' (restic's S3 form)")
            return value
        if not value.startswith("/"):
            raise ValueError(
                "expected an absolute path such as '/var/backups/shop' or 's3:https://host/bucket/prefix'"
            )
        return value

    @property
    def remote(self) -> bool:
        return self.repository.startswith(S3_PREFIX)

    @model_validator(mode="after")
    def _unique(self) -> BackupConfig:
        if self.remote and self.s3 is None:
            raise ValueError("an S3 repository needs [backup.s3] access_key_id and secret_access_key")
        names = [t.name for t in self.targets]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"backup target names must be unique; repeated: {', '.join(repeated)}")
        return self

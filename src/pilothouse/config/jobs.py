"""`[jobs]`: where job records live, how many run at once, how liveness of workers is judged.

SQLite (a file next to the config) is the default; a PostgreSQL `url` (usually a secret
reference) lets several workers and replicas share one queue.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from pilothouse.config.base import Section
from pilothouse.config.schedules import ScheduleConfig
from pilothouse.config.secret_ref import SecretRef, refuse_embedded_password
from pilothouse.durations import Duration

_MODULE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
MAX_CONCURRENCY = 1000
JOB_BUILDER_ID = "https://github.com/pilothouse/pilothouse/blob/main/docs/provenance.md#job-runner"


class JobsProvenanceConfig(Section):
    """Signed SLSA provenance for the files jobs declare as outputs (`@job.step(outputs=...)`)."""

    key: str | SecretRef = Field(
        description="Ed25519 private key (PEM): a file (mode 0600, relative to the config file) or "
        'a secret reference such as { secret = "provenance.key" }'
    )
    builder_id: str = Field(
        default=JOB_BUILDER_ID, description="runDetails.builder.id: who ran the job (a URI)"
    )
    source: str | None = Field(
        default=None,
        description="the job code's repository (externalParameters.source); default: the git "
        "checkout holding the config file, if it is one",
    )

    @field_validator("builder_id")
    @classmethod
    def _builder(cls, value: str) -> str:
        if ":" not in value or any(c.isspace() for c in value):
            raise ValueError("expected a URI such as 'https://ci.example/runners/shop'")
        return value


class JobsConfig(Section):
    """Job store, worker and liveness settings."""

    module: str | None = Field(default=None, description="Python module whose decorators declare jobs")
    path: str = Field(
        default="pilothouse-jobs.sqlite3", description="SQLite file (relative to service.state_dir)"
    )
    url: str | SecretRef | None = Field(default=None, description="postgresql:// URL; replaces SQLite")
    pg_schema: str = Field(default="pilothouse", description="PostgreSQL schema holding the tables")
    worker: bool = Field(default=True, description="run a worker inside `pilothouse serve`")
    concurrency: Annotated[int, Field(ge=1, le=MAX_CONCURRENCY)] = 4
    poll_interval: Duration = 1.0
    heartbeat_interval: Duration = 2.0
    heartbeat_timeout: Duration = 30.0
    cancel_grace: Duration = 5.0
    retry_after: Duration = 30.0
    store_timeout: Duration = Field(
        default=5.0, description="longest wait for one PostgreSQL store call (connect, statement, answer)"
    )
    scheduler: Literal["worker", "kubernetes", "systemd"] = Field(
        default="worker",
        description="who fires [[jobs.schedules]]: the job worker, generated CronJobs or systemd timers",
    )
    schedules: list[ScheduleConfig] = Field(default_factory=list, description="jobs that run by time")
    provenance: JobsProvenanceConfig | None = Field(
        default=None, description="sign what jobs declare as outputs (SLSA provenance beside each)"
    )

    @field_validator("module")
    @classmethod
    def _module(cls, value: str | None) -> str | None:
        if value is not None and not _MODULE.match(value):
            raise ValueError("expected a dotted Python module name such as 'shop.jobs'")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | SecretRef | None) -> str | SecretRef | None:
        if isinstance(value, str):
            if not value.startswith(("postgresql://", "postgres://")):
                raise ValueError("expected a postgresql:// URL (leave it out to use the SQLite `path`)")
            refuse_embedded_password(value)
        return value

    @field_validator("pg_schema")
    @classmethod
    def _schema(cls, value: str) -> str:
        if not _SCHEMA.match(value):
            raise ValueError("expected a lowercase SQL identifier such as 'pilothouse'")
        return value

    @model_validator(mode="after")
    def _timings(self) -> JobsConfig:
        if self.store_timeout < 1:
            raise ValueError("store_timeout must be at least 1s")
        if min(self.poll_interval, self.heartbeat_interval) < 0.01:
            raise ValueError("poll_interval and heartbeat_interval must be at least 10ms")
        if self.heartbeat_timeout < 2 * self.heartbeat_interval:
            raise ValueError(
                f"heartbeat_timeout ({self.heartbeat_timeout}s) must be at least twice "
                f"heartbeat_interval ({self.heartbeat_interval}s), or live workers look dead"
            )
        self._check_schedules()
        return self

    def _check_schedules(self) -> None:
        keys = [s.key for s in self.schedules]
        repeated = sorted({k for k in keys if keys.count(k) > 1})
        if repeated:
            raise ValueError(f"schedule names must be unique; repeated: {', '.join(repeated)} (set `name`)")
        if self.scheduler == "worker":
            return
        for s in self.schedules:
            if s.has_seconds:
                raise ValueError(
                    f"schedule '{s.key}': cron {s.cron!r} has a seconds field; scheduler "
                    f"'{self.scheduler}' fires at most once a minute (use 5 fields)"
                )
            if s.misfire == "run_all":
                raise ValueError(
                    f"schedule '{s.key}': misfire 'run_all' needs scheduler 'worker' "
                    f"({self.scheduler} runs a missed schedule once)"
                )
            if self.scheduler == "systemd" and s.concurrency != "forbid":
                raise ValueError(
                    f"schedule '{s.key}': concurrency '{s.concurrency}' needs scheduler 'worker' or "
                    "'kubernetes' (a systemd timer never starts a unit that is still running)"
                )

"""`[[jobs.schedules]]`: when a job runs by itself. One table drives the three ways of running it
(the in-process scheduler of the worker, Kubernetes CronJobs, systemd timers), so a schedule is
written once and every runner reads the same expression, time zone and policies.

Cron expressions are parsed by croniter (a maintained library), never by hand: five fields, or a
sixth for seconds (worker scheduler only; CronJobs and timers fire at most once a minute here).
"""

from __future__ import annotations

import re
import zoneinfo
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from pilothouse.config.base import Section
from pilothouse.durations import Duration

_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,40}[a-z0-9])?$")
ON_TIME = 10.0
"""How late a run may start under `misfire = "skip"` (Kubernetes' own smallest reliable deadline)."""

Scalar = str | int | float | bool


def cron_error(expression: str) -> str | None:
    """Why croniter refuses `expression`, or None when it is valid."""
    try:
        from croniter import croniter
    except ImportError:
        return "schedules need the `schedules` extra: pip install 'pilothouse[schedules]'"

    try:
        croniter(expression)
    except (ValueError, KeyError) as exc:  # croniter raises CroniterBadCronError (a ValueError)
        return str(exc) or type(exc).__name__
    return None


class ScheduleConfig(Section):
    """One schedule: run `job` with `params` at the times `cron` names, in `timezone`."""

    job: str = Field(description="job name (declared in [jobs].module, or a built-in job)")
    cron: str = Field(description="cron expression: 5 fields, or 6 with seconds last (worker only)")
    name: str | None = Field(default=None, description="schedule name (default: the job name)")
    timezone: str = Field(default="UTC", description="IANA time zone the cron times are read in")
    params: dict[str, Scalar] = Field(default_factory=dict, description="job parameters")
    misfire: Literal["run_once", "run_all", "skip"] = Field(
        default="run_once",
        description="missed runs (replica down, store outage): run the latest once, run each "
        "(worker only), or skip runs later than 10s",
    )
    misfire_grace: Annotated[Duration, Field(description="how late a missed run may still start")] = 3600.0
    concurrency: Literal["forbid", "allow", "replace"] = Field(
        default="forbid", description="when the previous run is still queued or running"
    )

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        problem = cron_error(value)
        if problem is not None:
            raise ValueError(f"not a cron expression ({problem}); expected e.g. '0 3 * * *'")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError("unknown time zone; expected an IANA name such as 'Europe/Berlin'") from None
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and not _NAME.match(value):
            raise ValueError("expected lowercase letters, digits and '-' (at most 42 characters)")
        return value

    @model_validator(mode="after")
    def _grace(self) -> ScheduleConfig:
        if self.misfire_grace < ON_TIME:
            raise ValueError(f"misfire_grace must be at least {ON_TIME:g}s")
        return self

    @property
    def key(self) -> str:
        """The schedule's identity in the store and in generated object names."""
        return self.name or re.sub(r"[^a-z0-9-]", "-", self.job).strip("-")

    @property
    def deadline(self) -> float:
        """How late a run may start: the grace under run_once/run_all, ON_TIME under skip."""
        return ON_TIME if self.misfire == "skip" else self.misfire_grace

    @property
    def has_seconds(self) -> bool:
        return len(self.cron.split()) == 6

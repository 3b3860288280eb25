"""What a job store holds and the one interface the worker, the ops API and the CLI use.

A job moves queued -> running -> finished (outcome ok | warning | failed | cancelled | lost).
A running job belongs to one worker, whose heartbeat proves it is alive; a job whose heartbeat
is older than the timeout is requeued or finished as "lost", by its own policy. A draining flag
in the store stops every worker (and every replica) from taking jobs and rejects submissions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

from pilothouse.errors import OperationError

QUEUED, RUNNING, FINISHED = "queued", "running", "finished"


class Draining(OperationError):
    """The store is draining: submissions are rejected until `pilothouse jobs undrain`."""


@dataclass(frozen=True, slots=True)
class JobRecord:
    id: int
    name: str
    params: dict[str, Any]
    state: str
    outcome: str | None
    max_rc: int | None
    attempts: int
    max_attempts: int
    on_lost: str
    worker_id: str | None
    submitted_at: float
    started_at: float | None
    finished_at: float | None
    heartbeat_at: float | None
    cancel_requested: bool
    traceparent: str | None
    error: str | None

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(frozen=True, slots=True)
class StepRecord:
    job_id: int
    attempt: int
    seq: int
    name: str
    outcome: str
    rc: int | None
    tries: int
    started_at: float | None
    finished_at: float | None
    error: str | None

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(frozen=True, slots=True)
class WorkerRecord:
    id: str
    host: str
    pid: int
    started_at: float
    heartbeat_at: float
    accepting: bool
    running: int
    age: float

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(frozen=True, slots=True)
class Recovered:
    """A job taken back from a worker that stopped heartbeating."""

    id: int
    name: str
    action: str  # "requeued" | "lost"
    detail: str


FireOutcome = Literal["fired", "forbidden", "advanced", "not-holder", "draining", "raced"]


@dataclass(frozen=True, slots=True)
class ScheduleState:
    """What the store knows of one schedule."""

    name: str
    last_fire: float
    """The last slot (cron time) handled: fired, skipped or counted missed."""
    last_job_id: int | None
    missed: int
    created_at: float
    last_success: float | None
    """When the last run of this schedule finished ok or with a warning."""

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(frozen=True, slots=True)
class ScheduledJob:
    """The job a fire queues."""

    name: str
    params: dict[str, Any]
    on_lost: str
    max_attempts: int


@dataclass(frozen=True, slots=True)
class ScheduleRun:
    schedule: str
    fire_at: float
    job_id: int | None
    fired_by: str
    fired_at: float


class JobStore(Protocol):
    """Blocking calls; the async worker runs them in a thread."""

    description: str

    def migrate(self) -> int: ...
    def close(self) -> None: ...
    def now(self) -> float: ...

    def submit(
        self, name: str, params: dict[str, Any], *, on_lost: str, max_attempts: int, traceparent: str | None
    ) -> int: ...
    def claim(self, worker_id: str, limit: int, job_id: int | None = None) -> list[JobRecord]: ...
    def heartbeat(self, worker_id: str, accepting: bool) -> dict[int, bool]: ...
    def step_started(self, job_id: int, attempt: int, seq: int, name: str) -> None: ...
    def step_finished(
        self,
        job_id: int,
        attempt: int,
        seq: int,
        name: str,
        outcome: str,
        rc: int | None,
        tries: int,
        error: str | None,
    ) -> None: ...
    def finish(self, job_id: int, worker_id: str, outcome: str, max_rc: int, error: str | None) -> bool: ...
    def recover_stale(self, timeout: float) -> list[Recovered]: ...

    def register_worker(self, worker_id: str, host: str, pid: int) -> None: ...
    def unregister_worker(self, worker_id: str) -> None: ...
    def workers(self) -> list[WorkerRecord]: ...

    def set_draining(self, draining: bool) -> None: ...
    def draining_since(self) -> float | None: ...
    def request_cancel(self, job_id: int) -> JobRecord | None: ...
    def cancel_running(self) -> int: ...

    def get(self, job_id: int) -> JobRecord | None: ...
    def steps(self, job_id: int) -> list[StepRecord]: ...
    def list_jobs(self, state: str | None = None, limit: int = 50) -> list[JobRecord]: ...
    def counts(self) -> dict[str, int]: ...

    # schedules (jobs/store/schedules.py)
    def acquire_lease(self, name: str, owner: str, ttl: float) -> bool: ...
    def release_lease(self, name: str, owner: str) -> None: ...
    def lease_holder(self, name: str) -> str | None: ...
    def schedule_state(self, name: str) -> ScheduleState: ...
    def schedule_states(self) -> list[ScheduleState]: ...
    def schedule_runs(self, name: str, limit: int = 100) -> list[ScheduleRun]: ...
    def fire_schedule(
        self,
        name: str,
        *,
        expected_last: float,
        slot: float,
        owner: str,
        lease: str,
        missed: int,
        job: ScheduledJob | None,
        concurrency: str = "forbid",
    ) -> tuple[FireOutcome, int | None]: ...

    # retention (jobs/store/retention.py)
    def prune_finished(self, max_age: float | None, keep: int | None) -> int: ...

    # history (jobs/store/history.py)
    def step_successes(self, job: str, complete_step: str) -> dict[str, float]: ...
    def last_finished(self, job: str) -> tuple[str, float] | None: ...
    def latest_step_outcomes(self, job: str) -> dict[str, str]: ...

"""The in-process scheduler: the job worker fires `[[jobs.schedules]]` when they are due.

Every worker runs it; only the holder of the store's "scheduler" lease fires. Each tick renews
the lease (it lasts `[jobs].heartbeat_timeout`), reads each schedule's last handled slot, and
hands the due slots to the store, which queues the job and moves the schedule in one
compare-and-set transaction: a slot fires once however many replicas run, a restart resumes
from the store, and a replica killed while holding the lease is replaced once the lease expires.

Missed slots (a replica down, a store outage) are handled by the schedule's misfire policy:
`run_once` queues the latest slot still within `misfire_grace`, `run_all` every such slot,
`skip` only a slot at most 10s late; the others are counted as missed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from pilothouse.catalog import jobs as job_metrics
from pilothouse.config.jobs import JobsConfig
from pilothouse.config.schedules import ScheduleConfig
from pilothouse.errors import ConfigError
from pilothouse.jobs import cron
from pilothouse.jobs.definition import ParamError
from pilothouse.jobs.registry import Registry, UnknownJob
from pilothouse.jobs.store import JobStore
from pilothouse.jobs.store.base import FireOutcome, ScheduledJob
from pilothouse.metrics import Metrics

log = logging.getLogger("pilothouse.jobs.scheduler")
LEASE = "scheduler"


@dataclass(frozen=True, slots=True)
class Fired:
    schedule: str
    slot: float
    outcome: FireOutcome
    job_id: int | None


def check_schedules(settings: JobsConfig, registry: Registry, source: object = "config") -> None:
    """Every schedule names a declared job with parameters it accepts: one ConfigError line."""
    for index, schedule in enumerate(settings.schedules):
        where = f"{source}: jobs.schedules[{index}]"
        try:
            registry.get(schedule.job).bind(schedule.params)
        except UnknownJob as exc:
            raise ConfigError(f"{where}.job: {schedule.job!r} is invalid: {exc}") from None
        except ParamError as exc:
            raise ConfigError(f"{where}.params: {exc}") from None


class Scheduler:
    """Fires due schedules from one worker (`owner`); `tick` and `publish` block (run in a thread)."""

    def __init__(
        self, store: JobStore, registry: Registry, settings: JobsConfig, metrics: Metrics, owner: str
    ) -> None:
        self.store = store
        self.registry = registry
        self.settings = settings
        self.metrics = metrics
        self.owner = owner
        self.holding = False

    def tick(self) -> list[Fired]:
        """Renew or take the lease; if held, fire every due slot. What was done."""
        holding = self.store.acquire_lease(LEASE, self.owner, self.settings.heartbeat_timeout)
        if holding != self.holding:
            log.info("scheduler lease %s by %s", "taken" if holding else "lost", self.owner)
            self.holding = holding
        if not holding:
            return []
        fired: list[Fired] = []
        for schedule in self.settings.schedules:
            fired.extend(self._due(schedule))
        return fired

    def _due(self, schedule: ScheduleConfig) -> Iterable[Fired]:
        state = self.store.schedule_state(schedule.key)
        now = self.store.now()
        slots, dropped = cron.fire_times(schedule.cron, schedule.timezone, state.last_fire, now)
        if not slots:
            return
        due = [slot for slot in slots if now - slot <= schedule.deadline]
        chosen = due if schedule.misfire == "run_all" else due[-1:]
        missed = dropped + len(slots) - len(chosen)
        definition = self.registry.get(schedule.job)
        job = ScheduledJob(
            definition.name, definition.bind(schedule.params), definition.on_lost, definition.max_attempts
        )
        expected = state.last_fire
        if not chosen:  # everything is too late: move past it, counted as missed
            outcome, _ = self._fire(schedule, expected, slots[-1], missed, None)
            if outcome == "advanced":
                log.warning(
                    "schedule %s: %d run(s) missed (later than %gs)", schedule.key, missed, schedule.deadline
                )
            return
        for slot in chosen:
            outcome, job_id = self._fire(schedule, expected, slot, missed, job)
            if outcome in ("not-holder", "draining", "raced"):
                return
            if missed:
                log.warning(
                    "schedule %s: %d missed run(s) not started (misfire %s)",
                    schedule.key,
                    missed,
                    schedule.misfire,
                )
            log.info(
                "schedule %s: slot %.0f %s%s",
                schedule.key,
                slot,
                outcome,
                f" job #{job_id}" if job_id is not None else " (previous run still active)",
            )
            yield Fired(schedule.key, slot, outcome, job_id)
            expected, missed = slot, 0

    def _fire(
        self, schedule: ScheduleConfig, expected: float, slot: float, missed: int, job: ScheduledJob | None
    ) -> tuple[FireOutcome, int | None]:
        return self.store.fire_schedule(
            schedule.key,
            expected_last=expected,
            slot=slot,
            owner=self.owner,
            lease=LEASE,
            missed=missed,
            job=job,
            concurrency=schedule.concurrency,
        )

    def publish(self) -> None:
        """Set the schedule gauges from the store (every replica exports the same values, so the
        series survive a lease moving to another replica)."""
        states = {state.name: state for state in self.store.schedule_states()}
        now = self.store.now()
        for schedule in self.settings.schedules:
            state = states.get(schedule.key)
            if state is None:
                continue
            key = schedule.key
            self.metrics.gauge(job_metrics.SCHEDULE_LAST_FIRE).labels(key).set(state.last_fire)
            self.metrics.gauge(job_metrics.SCHEDULE_NEXT_FIRE).labels(key).set(
                cron.next_fires(schedule.cron, schedule.timezone, max(now, state.last_fire))[0]
            )
            self.metrics.gauge(job_metrics.SCHEDULE_LAST_SUCCESS).labels(key).set(
                state.last_success if state.last_success is not None else state.created_at
            )
            self.metrics.gauge(job_metrics.SCHEDULE_SUCCESS_WINDOW).labels(key).set(
                cron.longest_period(schedule.cron, schedule.timezone, now) + schedule.misfire_grace
            )
            self.metrics.gauge(job_metrics.SCHEDULE_MISSED).labels(key).set(state.missed)

    def release(self) -> None:
        """Hand the lease back at once (a clean stop need not wait for it to expire)."""
        self.store.release_lease(LEASE, self.owner)
        self.holding = False

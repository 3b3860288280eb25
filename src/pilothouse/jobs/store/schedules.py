"""The store side of schedules: a lease that elects one firing replica, and a compare-and-set on
each schedule's last fire time that makes a fire happen once.

The lease decides who fires; the compare-and-set, in the same transaction as the job it queues,
makes a second firing of the same slot impossible even if two replicas believed they held the
lease (a paused process waking up after its lease ran out). A replica that dies holding the lease
stops renewing it; after `ttl` seconds of the database clock another replica takes it.
"""

# ruff: noqa: S608 - statements are built from module constants and validated identifiers only.
from __future__ import annotations

import json

from pilothouse.jobs.store.base import FireOutcome, ScheduledJob, ScheduleRun, ScheduleState
from pilothouse.jobs.store.sql import INSERT_JOB, Run, SqlStore

_ACTIVE = "('queued', 'running')"


class SchedulingSql(SqlStore):
    """`SqlStore` plus leases and schedule state (tables of migration 2)."""

    # -- leases --------------------------------------------------------------------------------

    def acquire_lease(self, name: str, owner: str, ttl: float) -> bool:
        """Take or renew lease `name` for `ttl` seconds; False while another owner holds it."""
        with self._tx() as run:
            rows = run(
                "INSERT INTO {leases} (name, owner, expires_at) VALUES (?, ?, {now} + ?)"
                " ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at"
                " WHERE {leases}.owner = excluded.owner OR {leases}.expires_at < {now} RETURNING owner",
                (name, owner, ttl),
            )
        return bool(rows)

    def release_lease(self, name: str, owner: str) -> None:
        with self._tx() as run:
            run("DELETE FROM {leases} WHERE name = ? AND owner = ?", (name, owner))

    def lease_holder(self, name: str) -> str | None:
        rows = self._query("SELECT owner FROM {leases} WHERE name = ? AND expires_at >= {now}", (name,))
        return str(rows[0][0]) if rows else None

    # -- schedule state ------------------------------------------------------------------------

    def schedule_state(self, name: str) -> ScheduleState:
        """The state of `name`, created on first sight with `last_fire` = now (no back-fill)."""
        with self._tx() as run:
            run(
                "INSERT INTO {schedules} (name, last_fire, missed, created_at) VALUES (?, {now}, 0, {now})"
                " ON CONFLICT (name) DO NOTHING",
                (name,),
            )
            return self._states(run, name)[0]

    def schedule_states(self) -> list[ScheduleState]:
        with self._tx(write=False) as run:
            return self._states(run, None)

    def _states(self, run: Run, name: str | None) -> list[ScheduleState]:
        where, params = (" WHERE s.name = ?", (name,)) if name is not None else ("", ())
        rows = run(
            "SELECT s.name, s.last_fire, s.last_job_id, s.missed, s.created_at,"
            " (SELECT max(j.finished_at) FROM {schedule_runs} r JOIN {jobs} j ON j.id = r.job_id"
            "  WHERE r.schedule = s.name AND j.outcome IN ('ok', 'warning'))"
            f" FROM {{schedules}} s{where} ORDER BY s.name",
            params,
        )
        return [
            ScheduleState(
                str(n),
                float(f),
                None if j is None else int(j),
                int(m),
                float(c),
                None if ok is None else float(ok),
            )
            for n, f, j, m, c, ok in rows
        ]

    def schedule_runs(self, name: str, limit: int = 100) -> list[ScheduleRun]:
        rows = self._query(
            "SELECT schedule, fire_at, job_id, fired_by, fired_at FROM {schedule_runs}"
            " WHERE schedule = ? ORDER BY fire_at DESC LIMIT ?",
            (name, limit),
        )
        return [
            ScheduleRun(str(s), float(f), None if j is None else int(j), str(b), float(a))
            for s, f, j, b, a in rows
        ]

    # -- firing --------------------------------------------------------------------------------

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
    ) -> tuple[FireOutcome, int | None]:
        """Move `name` from `expected_last` to `slot`, adding `missed`, and queue `job` (None: only
        advance). One transaction: the caller must hold `lease`, nobody may have moved the
        schedule meanwhile, the store must not be draining. Returns the outcome and the job id."""
        with self._tx() as run:
            if not run(
                "SELECT 1 FROM {leases} WHERE name = ? AND owner = ? AND expires_at >= {now}", (lease, owner)
            ):
                return "not-holder", None
            if job is not None and run("SELECT 1 FROM {control} WHERE key = 'draining'"):
                return "draining", None  # the slot stays due: the misfire policy decides after undrain
            moved = run(
                "UPDATE {schedules} SET last_fire = ?, missed = missed + ? WHERE name = ? AND last_fire = ?"
                " RETURNING last_job_id",
                (slot, missed, name, expected_last),
            )
            if not moved:
                return "raced", None
            if job is None:
                return "advanced", None
            previous = moved[0][0]
            if previous is not None and concurrency != "allow":
                active = run(f"SELECT 1 FROM {{jobs}} WHERE id = ? AND state IN {_ACTIVE}", (previous,))
                if active and concurrency == "forbid":
                    run("UPDATE {schedules} SET missed = missed + 1 WHERE name = ?", (name,))
                    return "forbidden", None
                if active:  # replace: the old run stops, the new one starts
                    run(
                        "UPDATE {jobs} SET state = 'finished', outcome = 'cancelled', finished_at = {now},"
                        " error = 'replaced by a newer scheduled run' WHERE id = ? AND state = 'queued'",
                        (previous,),
                    )
                    run(
                        "UPDATE {jobs} SET cancel_requested = 1 WHERE id = ? AND state = 'running'",
                        (previous,),
                    )
            job_id = int(
                run(
                    INSERT_JOB,
                    (job.name, json.dumps(job.params, sort_keys=True), job.max_attempts, job.on_lost, None),
                )[0][0]
            )
            run(
                "INSERT INTO {schedule_runs} (schedule, fire_at, job_id, fired_by, fired_at)"
                " VALUES (?, ?, ?, ?, {now})",
                (name, slot, job_id, owner),
            )
            run("UPDATE {schedules} SET last_job_id = ? WHERE name = ?", (job_id, name))
        return "fired", job_id

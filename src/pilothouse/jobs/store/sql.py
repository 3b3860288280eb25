"""The SQL both stores share. Statements are written once with `?` placeholders and `{name}`
tokens; a dialect supplies table names, the clock, id columns and row locking.

Time comes from the database clock (`{now}`), never from the caller, so workers on hosts with
skewed clocks still agree on whose heartbeat is stale.
"""

# ruff: noqa: S608 - statements are built from module constants and validated identifiers only;
# every value is a bound parameter.
from __future__ import annotations

import abc
import contextlib
import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from pilothouse.errors import OperationError
from pilothouse.jobs.definition import ABEND_RC
from pilothouse.jobs.store.base import (
    FINISHED,
    QUEUED,
    RUNNING,
    Draining,
    JobRecord,
    Recovered,
    StepRecord,
    WorkerRecord,
)
from pilothouse.redaction import redact

Run = Callable[..., list[tuple[Any, ...]]]
"""`run(sql, params=())` inside a transaction: the rows, or [] for statements without rows."""

_JOB_COLUMNS = (
    "id, name, params, state, outcome, max_rc, attempts, max_attempts, on_lost, worker_id, submitted_at,"
    " started_at, finished_at, heartbeat_at, cancel_requested, traceparent, error"
)
_STEP_COLUMNS = "job_id, attempt, seq, name, outcome, rc, tries, started_at, finished_at, error"
_NOT_DRAINING = "NOT EXISTS (SELECT 1 FROM {control} WHERE key = 'draining')"
INSERT_JOB = (
    "INSERT INTO {jobs} (name, params, state, attempts, max_attempts, on_lost, submitted_at,"
    " cancel_requested, traceparent) SELECT ?, ?, 'queued', 0, ?, ?, {now}, 0, ?"
    f" WHERE {_NOT_DRAINING} RETURNING id"
)
"""Queue a job unless the store drains: (name, params JSON, max_attempts, on_lost, traceparent)."""

MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (
        1,
        (
            "CREATE TABLE {jobs} (id {pk}, name TEXT NOT NULL, params TEXT NOT NULL, state TEXT NOT NULL,"
            " outcome TEXT, max_rc INTEGER, attempts INTEGER NOT NULL, max_attempts INTEGER NOT NULL,"
            " on_lost TEXT NOT NULL, worker_id TEXT, submitted_at {real} NOT NULL, started_at {real},"
            " finished_at {real}, heartbeat_at {real}, cancel_requested INTEGER NOT NULL DEFAULT 0,"
            " traceparent TEXT, error TEXT)",
            "CREATE INDEX jobs_state_idx ON {jobs} (state, id)",
            "CREATE INDEX jobs_worker_idx ON {jobs} (worker_id, state)",
            "CREATE TABLE {steps} (job_id BIGINT NOT NULL, attempt INTEGER NOT NULL, seq INTEGER NOT NULL,"
            " name TEXT NOT NULL, outcome TEXT NOT NULL, rc INTEGER, tries INTEGER NOT NULL,"
            " started_at {real}, finished_at {real}, error TEXT, PRIMARY KEY (job_id, attempt, seq))",
            "CREATE TABLE {workers} (id TEXT PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT NULL,"
            " started_at {real} NOT NULL, heartbeat_at {real} NOT NULL, accepting INTEGER NOT NULL)",
            "CREATE TABLE {control} (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        ),
    ),
)
SCHEDULE_MIGRATION = (
    2,
    (
        "CREATE TABLE {leases} (name TEXT PRIMARY KEY, owner TEXT NOT NULL, expires_at {real} NOT NULL)",
        "CREATE TABLE {schedules} (name TEXT PRIMARY KEY, last_fire {real} NOT NULL, last_job_id BIGINT,"
        " missed INTEGER NOT NULL DEFAULT 0, created_at {real} NOT NULL)",
        "CREATE TABLE {schedule_runs} (schedule TEXT NOT NULL, fire_at {real} NOT NULL, job_id BIGINT,"
        " fired_by TEXT NOT NULL, fired_at {real} NOT NULL, PRIMARY KEY (schedule, fire_at))",
        "CREATE INDEX schedule_runs_job_idx ON {schedule_runs} (job_id)",
    ),
)
"""Schedules (jobs/store/schedules.py): the scheduler lease, each schedule's last fire, its runs."""
MIGRATIONS += (SCHEDULE_MIGRATION,)
LATEST = MIGRATIONS[-1][0]


class SqlStore(abc.ABC):
    """A `JobStore` over a DB-API connection; subclasses provide `_transaction` and dialect tokens."""

    description = "sql"
    placeholder = "?"
    tokens: dict[str, str] = {}

    # -- provided by the dialect ---------------------------------------------------------------

    @abc.abstractmethod
    def _transaction(self, write: bool = True) -> contextlib.AbstractContextManager[Run]:
        """A transaction yielding a `Run` (execute with the dialect's placeholders)."""

    def _prepare(self, run: Run) -> None:  # noqa: B027 - optional hook, empty by default
        """Dialect setup inside the migration transaction (schema, locks)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the connection(s)."""

    # -- helpers -------------------------------------------------------------------------------

    def sql(self, text: str) -> str:
        return text.format(**self.tokens).replace("?", self.placeholder)

    @contextlib.contextmanager
    def _tx(self, write: bool = True) -> Iterator[Run]:
        with self._transaction(write) as raw:

            def run(text: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
                return raw(self.sql(text), params)

            yield run

    def _query(self, text: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Every row `text` returns, read in a transaction of its own."""
        with self._tx(write=False) as run:
            return run(text, params)

    # -- schema --------------------------------------------------------------------------------

    def migrate(self) -> int:
        """Apply the migrations this store lacks, under a lock; the schema version."""
        with self._tx() as run:
            self._prepare(run)
            run(
                "CREATE TABLE IF NOT EXISTS {versions} (version INTEGER PRIMARY KEY,"
                " applied_at {real} NOT NULL)"
            )
            current = run("SELECT max(version) FROM {versions}")[0][0] or 0
            if current > LATEST:
                raise OperationError(
                    f"job store {self.description} has schema version {current}, newer than this "
                    f"pilothouse knows ({LATEST}); upgrade pilothouse"
                )
            for version, statements in MIGRATIONS:
                if version > current:
                    for statement in statements:
                        run(statement)
                    run("INSERT INTO {versions} (version, applied_at) VALUES (?, {now})", (version,))
        return LATEST

    def now(self) -> float:
        return float(self._query("SELECT {now}")[0][0])

    # -- the job lifecycle ---------------------------------------------------------------------

    def submit(
        self, name: str, params: dict[str, Any], *, on_lost: str, max_attempts: int, traceparent: str | None
    ) -> int:
        with self._tx() as run:
            params_json = json.dumps(params, sort_keys=True)
            rows = run(INSERT_JOB, (name, params_json, max_attempts, on_lost, traceparent))
        if not rows:
            raise Draining(
                f"job '{name}' rejected: the job store {self.description} is draining "
                "(run `pilothouse undrain` to accept jobs again)"
            )
        return int(rows[0][0])

    def claim(self, worker_id: str, limit: int, job_id: int | None = None) -> list[JobRecord]:
        only = " AND id = ?" if job_id is not None else ""
        params: tuple[Any, ...] = (worker_id, *((job_id,) if job_id is not None else ()), limit)
        with self._tx() as run:
            rows = run(
                "UPDATE {jobs} SET state = 'running', worker_id = ?, started_at = {now},"
                " heartbeat_at = {now}, attempts = attempts + 1"
                " WHERE id IN (SELECT id FROM {jobs} WHERE state = 'queued'"
                f"{only} AND {_NOT_DRAINING} ORDER BY id LIMIT ? {{skip_locked}}) RETURNING {_JOB_COLUMNS}",
                params,
            )
        return sorted((_job(row) for row in rows), key=lambda j: j.id)

    def heartbeat(self, worker_id: str, accepting: bool) -> dict[int, bool]:
        """Prove `worker_id` and its jobs alive; its running jobs, each with "cancel requested?"."""
        with self._tx() as run:
            run(
                "UPDATE {workers} SET heartbeat_at = {now}, accepting = ? WHERE id = ?",
                (int(accepting), worker_id),
            )
            rows = run(
                "UPDATE {jobs} SET heartbeat_at = {now} WHERE worker_id = ? AND state = 'running'"
                " RETURNING id, cancel_requested",
                (worker_id,),
            )
        return {int(job_id): bool(cancel) for job_id, cancel in rows}

    def step_started(self, job_id: int, attempt: int, seq: int, name: str) -> None:
        with self._tx() as run:
            run(
                f"INSERT INTO {{steps}} ({_STEP_COLUMNS})"
                " VALUES (?, ?, ?, ?, 'running', NULL, 0, {now}, NULL, NULL)",
                (job_id, attempt, seq, name),
            )

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
    ) -> None:
        with self._tx() as run:
            run(
                f"INSERT INTO {{steps}} ({_STEP_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, {{now}}, ?)"
                " ON CONFLICT (job_id, attempt, seq) DO UPDATE SET outcome = excluded.outcome,"
                " rc = excluded.rc, tries = excluded.tries, finished_at = excluded.finished_at,"
                " error = excluded.error",
                (job_id, attempt, seq, name, outcome, rc, tries, _masked(error)),
            )

    def finish(self, job_id: int, worker_id: str, outcome: str, max_rc: int, error: str | None) -> bool:
        """Record the end of a run; False if the job is no longer this worker's (it was recovered)."""
        with self._tx() as run:
            rows = run(
                "UPDATE {jobs} SET state = 'finished', outcome = ?, max_rc = ?, error = ?,"
                " finished_at = {now} WHERE id = ? AND worker_id = ? AND state = 'running' RETURNING id",
                (outcome, max_rc, _masked(error), job_id, worker_id),
            )
        return bool(rows)

    def recover_stale(self, timeout: float) -> list[Recovered]:
        """Requeue or fail (by each job's policy) running jobs whose heartbeat is too old."""
        stale = "state = 'running' AND heartbeat_at < {now} - ?"
        with self._tx() as run:
            run(
                "UPDATE {steps} SET outcome = 'lost', finished_at = {now} WHERE outcome = 'running'"
                f" AND job_id IN (SELECT id FROM {{jobs}} WHERE {stale})",
                (timeout,),
            )
            requeued = run(
                "UPDATE {jobs} SET state = 'queued', worker_id = NULL, started_at = NULL,"
                " heartbeat_at = NULL, error = 'worker ' || worker_id || ' stopped heartbeating; requeued'"
                f" WHERE {stale} AND on_lost = 'requeue' AND attempts < max_attempts AND cancel_requested = 0"
                " RETURNING id, name, error",
                (timeout,),
            )
            lost = run(
                "UPDATE {jobs} SET state = 'finished', outcome = 'lost', max_rc = ?, finished_at = {now},"
                " error = 'worker ' || worker_id || ' stopped heartbeating'"
                f" WHERE {stale} RETURNING id, name, error",
                (ABEND_RC, timeout),
            )
            run("DELETE FROM {workers} WHERE heartbeat_at < {now} - ?", (10 * timeout,))
        return [Recovered(int(i), n, "requeued", e) for i, n, e in requeued] + [
            Recovered(int(i), n, "lost", e) for i, n, e in lost
        ]

    # -- workers and draining ------------------------------------------------------------------

    def register_worker(self, worker_id: str, host: str, pid: int) -> None:
        with self._tx() as run:
            run(
                "INSERT INTO {workers} (id, host, pid, started_at, heartbeat_at, accepting)"
                " VALUES (?, ?, ?, {now}, {now}, 1) ON CONFLICT (id) DO UPDATE SET heartbeat_at ="
                " excluded.heartbeat_at, accepting = 1",
                (worker_id, host, pid),
            )

    def unregister_worker(self, worker_id: str) -> None:
        with self._tx() as run:
            run("DELETE FROM {workers} WHERE id = ?", (worker_id,))

    def workers(self) -> list[WorkerRecord]:
        rows = self._query(
            "SELECT w.id, w.host, w.pid, w.started_at, w.heartbeat_at, w.accepting,"
            " (SELECT count(*) FROM {jobs} j WHERE j.worker_id = w.id AND j.state = 'running'),"
            " {now} - w.heartbeat_at FROM {workers} w ORDER BY w.id"
        )
        return [
            WorkerRecord(str(i), str(h), int(p), float(s), float(hb), bool(a), int(n), float(age))
            for i, h, p, s, hb, a, n, age in rows
        ]

    def set_draining(self, draining: bool) -> None:
        with self._tx() as run:
            if draining:
                run(
                    "INSERT INTO {control} (key, value) VALUES ('draining', CAST({now} AS TEXT))"
                    " ON CONFLICT (key) DO NOTHING"
                )
            else:
                run("DELETE FROM {control} WHERE key = 'draining'")

    def draining_since(self) -> float | None:
        rows = self._query("SELECT value FROM {control} WHERE key = 'draining'")
        return float(rows[0][0]) if rows else None

    def request_cancel(self, job_id: int) -> JobRecord | None:
        """Cancel a queued job now; ask the worker of a running one to stop it."""
        with self._tx() as run:
            run(
                "UPDATE {jobs} SET state = 'finished', outcome = 'cancelled', finished_at = {now},"
                " error = 'cancelled before it started' WHERE id = ? AND state = 'queued'",
                (job_id,),
            )
            run("UPDATE {jobs} SET cancel_requested = 1 WHERE id = ? AND state = 'running'", (job_id,))
        return self.get(job_id)

    def cancel_running(self) -> int:
        with self._tx() as run:
            return len(run("UPDATE {jobs} SET cancel_requested = 1 WHERE state = 'running' RETURNING id"))

    # -- reading -------------------------------------------------------------------------------

    def get(self, job_id: int) -> JobRecord | None:
        rows = self._query(f"SELECT {_JOB_COLUMNS} FROM {{jobs}} WHERE id = ?", (job_id,))
        return _job(rows[0]) if rows else None

    def steps(self, job_id: int) -> list[StepRecord]:
        rows = self._query(
            f"SELECT {_STEP_COLUMNS} FROM {{steps}} WHERE job_id = ? ORDER BY attempt, seq", (job_id,)
        )
        return [_step(row) for row in rows]

    def list_jobs(self, state: str | None = None, limit: int = 50) -> list[JobRecord]:
        where, params = (" WHERE state = ?", (state, limit)) if state else ("", (limit,))
        rows = self._query(f"SELECT {_JOB_COLUMNS} FROM {{jobs}}{where} ORDER BY id DESC LIMIT ?", params)
        return [_job(row) for row in rows]

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys((QUEUED, RUNNING, FINISHED), 0)
        for state, count in self._query("SELECT state, count(*) FROM {jobs} GROUP BY state"):
            counts[str(state)] = int(count)
        return counts


def _job(row: tuple[Any, ...]) -> JobRecord:
    values = list(row)
    values[2] = json.loads(values[2])
    values[14] = bool(values[14])
    values[16] = _masked(values[16])
    return JobRecord(*values)


def _step(row: tuple[Any, ...]) -> StepRecord:
    values = list(row)
    values[-1] = _masked(values[-1])
    return StepRecord(*values)


def _masked(error: str | None) -> str | None:
    """Errors are shown to everyone who can list jobs: masked when written, and again when read
    (a row written before masking, or by another process, prints no secret either)."""
    return None if error is None else redact(error)

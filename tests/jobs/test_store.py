"""Both stores, the same contract: migrations, claims, draining, heartbeats, recovery, cancel."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from pilothouse.config.loader import config_from_dict
from pilothouse.errors import OperationError
from pilothouse.jobs.store import Draining, JobStore, open_store
from pilothouse.jobs.store.sql import LATEST


def make_store(kind: str, tmp_path: Path, postgres_url: str, schema: str) -> JobStore:
    jobs: dict[str, object] = {"heartbeat_interval": "100ms", "heartbeat_timeout": "300ms"}
    if kind == "postgres":
        jobs |= {"url": postgres_url, "pg_schema": schema}
    config = config_from_dict({"service": {"name": "t"}, "jobs": jobs}, source=tmp_path / "pilothouse.toml")
    return open_store(config)


@pytest.fixture(params=["sqlite", "postgres"])
def store(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_url: str, pg_schema: str
) -> Iterator[JobStore]:
    opened = make_store(request.param, tmp_path, postgres_url, pg_schema)
    yield opened
    opened.close()


def submit(store: JobStore, name: str = "j", on_lost: str = "requeue", max_attempts: int = 3) -> int:
    return store.submit(name, {"n": 1}, on_lost=on_lost, max_attempts=max_attempts, traceparent=None)


def test_migrations_are_versioned_and_idempotent(store: JobStore, tmp_path: Path) -> None:
    assert store.migrate() == LATEST
    assert store.migrate() == LATEST  # again: nothing to do, nothing broken
    job_id = submit(store)
    assert store.get(job_id) is not None


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite3"
    config = config_from_dict({"service": {"name": "t"}, "jobs": {"path": str(path)}})
    open_store(config).close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO job_schema_versions VALUES (?, 0)", (LATEST + 1,))
    with pytest.raises(OperationError, match=f"schema version {LATEST + 1}, newer"):
        open_store(config)


def test_claim_takes_queued_jobs_once_in_order(store: JobStore) -> None:
    ids = [submit(store) for _ in range(5)]
    store.register_worker("w1", "h", 1)
    first = store.claim("w1", 3)
    second = store.claim("w2", 10)
    assert [j.id for j in first] == ids[:3] and [j.id for j in second] == ids[3:]
    assert all(j.state == "running" and j.attempts == 1 for j in first + second)
    assert store.claim("w2", 10) == []
    assert store.finish(ids[0], "w1", "ok", 0, None)
    assert not store.finish(ids[0], "w1", "ok", 0, None)  # only once
    assert not store.finish(ids[3], "w1", "ok", 0, None)  # not w1's job
    assert store.counts() == {"queued": 0, "running": 4, "finished": 1}


def test_draining_rejects_submissions_and_stops_claims(store: JobStore) -> None:
    queued = submit(store)
    store.set_draining(True)
    assert store.draining_since() is not None
    with pytest.raises(Draining, match="draining"):
        submit(store)
    assert store.claim("w1", 10) == []
    store.set_draining(False)
    assert store.draining_since() is None
    assert [j.id for j in store.claim("w1", 10)] == [queued]


def test_steps_are_recorded_per_attempt(store: JobStore) -> None:
    job_id = submit(store)
    store.claim("w1", 1)
    store.step_started(job_id, 1, 1, "load")
    store.step_finished(job_id, 1, 1, "load", "warning", 4, 1, None)
    store.step_finished(job_id, 1, 2, "publish", "skipped", None, 0, None)
    steps = store.steps(job_id)
    assert [(s.name, s.outcome, s.rc, s.tries) for s in steps] == [
        ("load", "warning", 4, 1),
        ("publish", "skipped", None, 0),
    ]
    assert steps[0].started_at is not None and steps[0].finished_at is not None


def test_stale_jobs_are_requeued_or_lost_by_policy(store: JobStore) -> None:
    requeue = submit(store, "again", "requeue", max_attempts=2)
    fail = submit(store, "once", "fail")
    store.register_worker("dead", "h", 1)
    store.claim("dead", 2)
    store.step_started(requeue, 1, 1, "s")
    assert store.recover_stale(60) == []  # fresh heartbeats: nothing to do
    time.sleep(0.4)
    found = {r.id: r.action for r in store.recover_stale(0.3)}
    assert found == {requeue: "requeued", fail: "lost"}
    assert store.get(fail).outcome == "lost"  # type: ignore[union-attr]
    assert store.steps(requeue)[0].outcome == "lost"
    again = store.claim("alive", 5)
    assert [(j.id, j.attempts) for j in again] == [(requeue, 2)]
    time.sleep(0.4)
    assert [(r.id, r.action) for r in store.recover_stale(0.3)] == [(requeue, "lost")]  # attempts used up
    assert store.counts() == {"queued": 0, "running": 0, "finished": 2}


def test_heartbeats_keep_jobs_and_carry_cancel_requests(store: JobStore) -> None:
    running, queued = submit(store), submit(store)
    store.register_worker("w1", "h", 1)
    store.claim("w1", 1)
    assert store.heartbeat("w1", True) == {running: False}
    cancelled = store.request_cancel(queued)
    assert cancelled is not None and (cancelled.state, cancelled.outcome) == ("finished", "cancelled")
    asked = store.request_cancel(running)
    assert asked is not None and asked.state == "running" and asked.cancel_requested
    assert store.heartbeat("w1", False) == {running: True}
    [worker] = store.workers()
    assert (worker.id, worker.accepting, worker.running) == ("w1", False, 1)
    assert store.cancel_running() == 1


def test_unreachable_postgres_is_one_clear_error(
    monkeypatch: pytest.MonkeyPatch, refused_port: Callable[[], int]
) -> None:
    """The URL is a secret reference (as it should be); the password never reaches the message."""
    monkeypatch.setenv("T_JOBS_URL", f"postgresql://postgres:hunter2@127.0.0.1:{refused_port()}/test")
    config = config_from_dict({"service": {"name": "t"}, "jobs": {"url": {"secret": "jobs.url"}}})
    with pytest.raises(OperationError) as caught:
        open_store(config)
    message = str(caught.value)
    assert "cannot connect" in message and "hunter2" not in message and "\n" not in message


def test_postgres_tables_live_in_their_schema(postgres_url: str, pg_schema: str, tmp_path: Path) -> None:
    make_store("postgres", tmp_path, postgres_url, pg_schema).close()
    with psycopg.connect(postgres_url) as conn:
        tables = {
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (pg_schema,)
            )
        }
    assert tables == {
        "jobs",
        "job_steps",
        "job_workers",
        "job_control",
        "job_schema_versions",
        "job_leases",
        "job_schedules",
        "job_schedule_runs",  # migration 2: schedules
    }

"""Retention of finished job records, run as the built-in job `pilothouse.prune-jobs` from the CLI
(as a schedule would run it), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from pilothouse.config import load_config
from pilothouse.jobs.store import JobStore, open_store
from pilothouse.jobs.store.base import ScheduledJob
from tests.helpers import run_cli
from tests.jobs.conftest import jobs_config, pg_store


def _finish(store: JobStore, count: int) -> list[int]:
    ids = [
        store.submit("tick", {}, on_lost="requeue", max_attempts=1, traceparent=None) for _ in range(count)
    ]
    for record in store.claim("w", count):
        store.finish(record.id, "w", "ok", 0, None)
    return ids


def _age(store: JobStore, ids: list[int], seconds: float, postgres_url: str, schema: str) -> None:
    """Make jobs look finished `seconds` ago (a test clock on the stored timestamps)."""
    marks = ",".join(str(i) for i in ids)
    sql = f"UPDATE {{}} SET finished_at = finished_at - {seconds} WHERE id IN ({marks})"
    if schema:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(sql.format(f'"{schema}".jobs'))
    else:
        import sqlite3

        with sqlite3.connect(Path(store.description)) as conn:
            conn.execute(sql.format("jobs"))


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_prune_by_age_and_count_keeps_active_and_schedule_jobs(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    schema, url = "", ""
    if backend == "postgres":
        url, schema = request.getfixturevalue("postgres_url"), request.getfixturevalue("pg_schema")
    path = jobs_config(tmp_path, pg_store(url, schema) if schema else "")
    store = open_store(load_config(path))
    old = _finish(store, 4)
    recent = _finish(store, 8)
    # a schedule's only successful run is old: it stays (its last-success metric reads it)
    store.acquire_lease("scheduler", "me", 60)
    state = store.schedule_state("nightly")
    _, scheduled = store.fire_schedule(
        "nightly",
        expected_last=state.last_fire,
        slot=state.last_fire + 1,
        owner="me",
        lease="scheduler",
        missed=0,
        job=ScheduledJob("tick", {}, "requeue", 1),
    )
    assert scheduled is not None
    (claimed,) = store.claim("w", 1)
    store.finish(claimed.id, "w", "ok", 0, None)
    _age(store, [*old, scheduled], 7200, url, schema)
    queued = store.submit("tick", {}, on_lost="requeue", max_attempts=1, traceparent=None)

    result = run_cli(
        "jobs",
        "run",
        "pilothouse.prune-jobs",
        "--param",
        "max_age=1h",
        "--param",
        "keep=5",
        "-c",
        str(path),
        "--format",
        "json",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "deleted 8 finished job record(s)" in result.stderr  # 4 too old + 4 beyond the newest 5
    prune_run = json.loads(result.stdout)["id"]
    left = {r.id for r in store.list_jobs(None, 1000)}
    assert left == {*recent[-4:], scheduled, queued, prune_run}  # newest 5 finished, queued, this run
    assert store.steps(old[0]) == [] and store.schedule_runs("nightly")[0].job_id == scheduled


def test_bad_retention_parameters_fail_the_run(tmp_path: Path) -> None:
    path = jobs_config(tmp_path)
    result = run_cli("jobs", "run", "pilothouse.prune-jobs", "--param", "max_age=forever", "-c", str(path))
    assert result.returncode == 1 and "max_age" in result.stderr + result.stdout

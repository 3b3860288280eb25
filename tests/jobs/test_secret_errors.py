"""Job errors never keep or print a secret (issue 14 item 4): a step's exception quoting a secret
value is masked in the job store (`jobs.error`, `job_steps.error`, read back raw with SQL) and in
what `jobs run`, `jobs show` and `jobs list --format json` print, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import psycopg
import pytest

from tests.helpers import run_cli, write_config
from tests.jobs.conftest import pg_store

HERE = Path(__file__).parent
SECRET = "sk_live_51HtLeakyKeyForTheJobStore"


def _config(directory: Path, store: str) -> Path:
    shutil.copy(HERE / "leaky_jobs.py", directory / "leaky_jobs.py")
    return write_config(
        directory,
        f'[service]\nname = "leaktest"\n[telemetry]\nlog_format = "text"\n'
        f'[jobs]\nmodule = "leaky_jobs"\npath = "jobs.sqlite3"\n{store}\n',
    )


def _raw_errors(directory: Path, postgres_url: str, schema: str | None) -> list[str]:
    """Every error column as stored, read without going through Pilothouse."""
    queries = ("SELECT error FROM {s}jobs", "SELECT error FROM {s}job_steps")
    if schema is None:
        with sqlite3.connect(directory / "jobs.sqlite3") as conn:
            rows = [r for q in queries for r in conn.execute(q.format(s="")).fetchall()]
    else:
        with psycopg.connect(postgres_url) as conn:
            rows = [r for q in queries for r in conn.execute(q.format(s=f'"{schema}".')).fetchall()]
    return [str(r[0]) for r in rows if r[0] is not None]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_secret_in_a_step_error_is_masked_everywhere(
    tmp_path: Path, backend: str, postgres_url: str, pg_schema: str
) -> None:
    schema = pg_schema if backend == "postgres" else None
    config = _config(tmp_path, pg_store(postgres_url, pg_schema) if schema else "")
    env = {"LEAKY_API_KEY": SECRET}
    ran = run_cli("jobs", "run", "leaky", "-c", str(config), "--format", "json", env=env, cwd=tmp_path)
    assert ran.returncode == 1, ran.stderr
    job = json.loads(ran.stdout)
    shown = run_cli("jobs", "show", str(job["id"]), "-c", str(config), cwd=tmp_path)
    listed = run_cli("jobs", "list", "-c", str(config), "--format", "json", cwd=tmp_path)
    stored = _raw_errors(tmp_path, postgres_url, schema)
    assert len(stored) == 2  # the job's error and its step's error
    for text in (ran.stdout, ran.stderr, shown.stdout, listed.stdout, *stored):
        assert SECRET not in text
    assert "payment provider refused ***" in job["error"]
    assert "postgresql://***@db/x" in job["steps"][0]["error"]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_an_error_stored_unmasked_is_masked_when_printed(
    tmp_path: Path, backend: str, postgres_url: str, pg_schema: str
) -> None:
    """A row written before masking (or by any other writer) still prints no credential."""
    schema = pg_schema if backend == "postgres" else None
    config = _config(tmp_path, pg_store(postgres_url, pg_schema) if schema else "")
    ran = run_cli("jobs", "run", "leaky", "-c", str(config), "--format", "json",
                  env={"LEAKY_API_KEY": SECRET}, cwd=tmp_path)
    job_id = json.loads(ran.stdout)["id"]
    planted = "connect failed: postgresql://shop:hunter2-planted@db/x password=hunter2-planted"
    update = "UPDATE {s}jobs SET error = %s", "UPDATE {s}job_steps SET error = %s"
    if schema is None:
        with sqlite3.connect(tmp_path / "jobs.sqlite3") as conn:
            for sql in update:
                conn.execute(sql.format(s="").replace("%s", "?"), (planted,))
    else:
        with psycopg.connect(postgres_url) as conn:
            for sql in update:
                conn.execute(sql.format(s=f'"{schema}".'), (planted,))
    shown = run_cli("jobs", "show", str(job_id), "-c", str(config), cwd=tmp_path)
    shown_json = run_cli("jobs", "show", str(job_id), "-c", str(config), "--format", "json", cwd=tmp_path)
    listed = run_cli("jobs", "list", "-c", str(config), "--format", "json", cwd=tmp_path)
    for text in (shown.stdout, shown_json.stdout, listed.stdout):
        assert "hunter2-planted" not in text
    assert "postgresql://***@db/x" in shown.stdout

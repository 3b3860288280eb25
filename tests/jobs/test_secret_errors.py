"""Job errors never keep or print a secret (issue 14 item 4): a step's exception quoting a secret
value is masked in the job store (`jobs.error`, `job_steps.error`, read back raw with SQL) and in
what `jobs run`, `jobs show` and `jobs list --format json` print, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.helpers import run_cli, write_config
from tests.jobs.conftest import pg_store

HERE = Path(__file__).parent
SECRET = "sk_live_51HtLeakyKeyForTheJobStore"


@dataclass
class LeakyRun:
    """`jobs run leaky` done once on one store, and raw SQL on that store's tables."""

    directory: Path
    config: Path
    postgres_url: str
    schema: str | None
    ran: subprocess.CompletedProcess[str]

    def sql(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run `statement` ({s} is the schema prefix, %s a parameter) without Pilothouse."""
        if self.schema is None:
            with sqlite3.connect(self.directory / "jobs.sqlite3") as conn:
                return conn.execute(statement.format(s="").replace("%s", "?"), params).fetchall()
        with psycopg.connect(self.postgres_url) as conn:
            cursor = conn.execute(statement.format(s=f'"{self.schema}".'), params)
            return cursor.fetchall() if cursor.description else []

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_cli("jobs", *args, "-c", str(self.config), cwd=self.directory)


@pytest.fixture(params=["sqlite", "postgres"])
def leaky(request: pytest.FixtureRequest, tmp_path: Path, postgres_url: str, pg_schema: str) -> LeakyRun:
    schema = pg_schema if request.param == "postgres" else None
    shutil.copy(HERE / "leaky_jobs.py", tmp_path / "leaky_jobs.py")
    store = pg_store(postgres_url, pg_schema) if schema else ""
    config = write_config(
        tmp_path,
        f'[service]\nname = "leaktest"\n[telemetry]\nlog_format = "text"\n'
        f'[jobs]\nmodule = "leaky_jobs"\npath = "jobs.sqlite3"\n{store}\n',
    )
    ran = run_cli(
        "jobs",
        "run",
        "leaky",
        "-c",
        str(config),
        "--format",
        "json",
        env={"LEAKY_API_KEY": SECRET},
        cwd=tmp_path,
    )
    assert ran.returncode == 1, ran.stderr
    return LeakyRun(tmp_path, config, postgres_url, schema, ran)


def test_a_secret_in_a_step_error_is_masked_everywhere(leaky: LeakyRun) -> None:
    job = json.loads(leaky.ran.stdout)
    shown = leaky.cli("show", str(job["id"]))
    listed = leaky.cli("list", "--format", "json")
    stored = [
        str(row[0])
        for table in ("jobs", "job_steps")
        for row in leaky.sql(f"SELECT error FROM {{s}}{table}")
        if row[0] is not None
    ]
    assert len(stored) == 2  # the job's error and its step's error
    for text in (leaky.ran.stdout, leaky.ran.stderr, shown.stdout, listed.stdout, *stored):
        assert SECRET not in text
    assert "payment provider refused ***" in job["error"]
    assert "postgresql://***@db/x" in job["steps"][0]["error"]


def test_an_error_stored_unmasked_is_masked_when_printed(leaky: LeakyRun) -> None:
    """A row written before masking (or by any other writer) still prints no credential."""
    job_id = str(json.loads(leaky.ran.stdout)["id"])
    planted = "connect failed: postgresql://shop:hunter2-planted@db/x password=hunter2-planted"
    for table in ("jobs", "job_steps"):
        leaky.sql(f"UPDATE {{s}}{table} SET error = %s", (planted,))
    shown = leaky.cli("show", job_id)
    shown_json = leaky.cli("show", job_id, "--format", "json")
    listed = leaky.cli("list", "--format", "json")
    for text in (shown.stdout, shown_json.stdout, listed.stdout):
        assert "hunter2-planted" not in text
    assert "postgresql://***@db/x" in shown.stdout

"""Fixtures for the jobs suite: configs on a SQLite file or a private PostgreSQL schema, and
`pilothouse jobs worker` processes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from tests.helpers import PILOTHOUSE, write_config

HERE = Path(__file__).parent

TIMINGS = """
poll_interval = "50ms"
heartbeat_interval = "200ms"
heartbeat_timeout = "1s"
cancel_grace = "500ms"
retry_after = "7s"
"""


def wait_until(predicate: Callable[[], object], timeout: float = 15, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def pg_schema(postgres_url: str) -> Iterator[str]:
    """A schema of its own (other suites share the `test` database), dropped afterwards."""
    schema = f"jobs_test_{uuid.uuid4().hex[:10]}"
    yield schema
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def jobs_config(directory: Path, store: str = "", extra: str = "") -> Path:
    """A config using the sample jobs; `store` is extra [jobs] keys (default: SQLite file)."""
    shutil.copy(HERE / "sample_jobs.py", directory / "sample_jobs.py")
    return write_config(
        directory,
        f"""
[service]
name = "jobtest"

[lifecycle]
pre_stop_delay = "0s"
drain_timeout = "5s"

[telemetry]
log_format = "text"

[jobs]
module = "sample_jobs"
path = "jobs.sqlite3"
{store}
{TIMINGS}
{extra}
""",
    )


def pg_store(postgres_url: str, schema: str) -> str:
    return f'url = "{postgres_url}"\npg_schema = "{schema}"'


class WorkerProcess:
    """`pilothouse jobs worker --no-ops` in a subprocess, logging to a file."""

    def __init__(self, config: Path, *, concurrency: int = 2) -> None:
        self.config = config
        self.log = config.parent / f"worker-{uuid.uuid4().hex[:6]}.log"
        env = {**os.environ, "JOBS_LEDGER": str(config.parent / "ledger.txt")}
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(
                [
                    *PILOTHOUSE,
                    "jobs",
                    "worker",
                    "--no-ops",
                    "-c",
                    str(config),
                    "--concurrency",
                    str(concurrency),
                ],
                cwd=config.parent,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
            )

    @property
    def output(self) -> str:
        return self.log.read_text()

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 20) -> int:
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)


@pytest.fixture
def workers() -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(config: Path, **kwargs: int) -> WorkerProcess:
        worker = WorkerProcess(config, **kwargs)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def ledger(directory: Path) -> list[tuple[int, int, int, str]]:
    path = directory / "ledger.txt"
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        job_id, attempt, pid, event = line.split()
        rows.append((int(job_id), int(attempt), int(pid), event))
    return rows

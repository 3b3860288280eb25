"""The shared store: PostgreSQL, for several workers and replicas.

Claims use `SELECT ... FOR UPDATE SKIP LOCKED`: each worker locks the queued rows it takes and
skips rows another worker holds, so no job is taken twice and workers never wait on each other.
Tables live in their own schema (`[jobs].pg_schema`); migrations hold an advisory lock.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from pilothouse.errors import OperationError
from pilothouse.jobs.store.history import HistorySql
from pilothouse.jobs.store.sql import Run
from pilothouse.redaction import redact


def describe_url(url: str) -> str:
    """host:port/db of a URL, without user or password, for messages."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        info = conninfo_to_dict(url)
    except Exception:
        return "postgresql (unparseable URL)"
    return f"postgresql://{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '')}"


class PostgresStore(HistorySql):
    placeholder = "%s"

    def __init__(self, url: str, schema: str) -> None:
        try:
            import psycopg
        except ImportError:
            raise OperationError(
                "the PostgreSQL job store needs psycopg: pip install 'pilothouse[postgres]'"
            ) from None
        self._psycopg = psycopg
        self._url = url
        self.schema = schema
        self.description = f"{describe_url(url)} (schema {schema})"
        quoted = f'"{schema}"'
        self.tokens = {
            "jobs": f"{quoted}.jobs",
            "steps": f"{quoted}.job_steps",
            "workers": f"{quoted}.job_workers",
            "control": f"{quoted}.job_control",
            "versions": f"{quoted}.job_schema_versions",
            "leases": f"{quoted}.job_leases",
            "schedules": f"{quoted}.job_schedules",
            "schedule_runs": f"{quoted}.job_schedule_runs",
            "now": "extract(epoch from clock_timestamp())::double precision",
            "pk": "BIGSERIAL PRIMARY KEY",
            "real": "DOUBLE PRECISION",
            "skip_locked": "FOR UPDATE SKIP LOCKED",
        }
        self._lock = threading.Lock()
        self._conn = self._connect()

    def _connect(self) -> Any:
        try:
            return self._psycopg.connect(self._url, autocommit=True, connect_timeout=5)
        except self._psycopg.OperationalError as exc:
            reason = redact(str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__)
            raise OperationError(f"job store {self.description}: cannot connect: {reason}") from None

    def _prepare(self, run: Run) -> None:
        run("SELECT pg_advisory_xact_lock(hashtext(?))", (f"pilothouse.jobs.{self.schema}",))
        run(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')

    @contextlib.contextmanager
    def _transaction(self, write: bool = True) -> Iterator[Run]:
        with self._lock:
            if self._conn.broken or self._conn.closed:
                self._conn = self._connect()
            with self._conn.transaction(), self._conn.cursor() as cursor:

                def run(text: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
                    cursor.execute(text, tuple(params))
                    return list(cursor.fetchall()) if cursor.description else []

                yield run

    def close(self) -> None:
        with self._lock:
            self._conn.close()

"""The shared store: PostgreSQL, for several workers and replicas.

Claims use `SELECT ... FOR UPDATE SKIP LOCKED`: each worker locks the queued rows it takes and
skips rows another worker holds, so no job is taken twice and workers never wait on each other.
Tables live in their own schema (`[jobs].pg_schema`); migrations hold an advisory lock.

Every call is bounded by `timeout` (`[jobs].store_timeout`): libpq's connect timeout, a server
`statement_timeout`, and, for a server that accepted the connection and went silent (frozen,
partitioned), a timer that shuts the connection's socket down so the blocked call fails. libpq
has no read timeout of its own and neither keepalives nor `tcp_user_timeout` see a peer whose
kernel still acknowledges; a cancel request to a frozen server goes unanswered too.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
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

    def __init__(self, url: str, schema: str, timeout: float = 5.0) -> None:
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
        self.timeout = timeout
        self._lock = threading.Lock()
        self._conn = self._connect()

    def _connect(self) -> Any:
        try:
            return self._psycopg.connect(
                self._url,
                autocommit=True,
                connect_timeout=max(2, math.ceil(self.timeout)),  # libpq's minimum is 2 s
                options=f"-c statement_timeout={math.ceil(self.timeout * 1000)}",
            )
        except self._psycopg.OperationalError as exc:
            raise OperationError(f"job store {self.description}: cannot connect: {_reason(exc)}") from None

    def _cut(self, conn: Any) -> None:
        """The deadline passed: shut the socket down so the call blocked on it fails now."""
        with contextlib.suppress(Exception):
            fd = conn.pgconn.socket
            with socket.socket(fileno=os.dup(fd)) as sock:
                sock.shutdown(socket.SHUT_RDWR)

    def _expire(self, conn: Any, fired: threading.Event) -> None:
        fired.set()
        self._cut(conn)

    @contextlib.contextmanager
    def _deadline(self) -> Iterator[None]:
        """Hold the connection for one call, for at most `timeout` seconds."""
        if not self._lock.acquire(timeout=self.timeout):
            raise OperationError(f"job store {self.description}: busy for {self.timeout:g}s (no answer)")
        timer: threading.Timer | None = None
        fired = threading.Event()
        try:
            if self._conn.broken or self._conn.closed:
                self._conn = self._connect()
            timer = threading.Timer(self.timeout, self._expire, (self._conn, fired))
            timer.daemon = True
            timer.start()
            yield
        except self._psycopg.OperationalError as exc:
            if fired.is_set():
                raise OperationError(
                    f"job store {self.description}: no answer within {self.timeout:g}s ([jobs].store_timeout)"
                ) from None
            raise OperationError(f"job store {self.description}: {_reason(exc)}") from None
        finally:
            if timer is not None:
                timer.cancel()
            self._lock.release()

    def _prepare(self, run: Run) -> None:
        run("SELECT pg_advisory_xact_lock(hashtext(?))", (f"pilothouse.jobs.{self.schema}",))
        run(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')

    @contextlib.contextmanager
    def _transaction(self, write: bool = True) -> Iterator[Run]:
        with self._deadline(), self._conn.transaction(), self._conn.cursor() as cursor:

            def run(text: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
                cursor.execute(text, tuple(params))
                return list(cursor.fetchall()) if cursor.description else []

            yield run

    def close(self) -> None:
        """Close the connection; one stuck in a call is cut first (a frozen server never answers
        the goodbye either)."""
        if not self._lock.acquire(timeout=self.timeout):
            self._cut(self._conn)
            return
        try:
            self._cut(self._conn)
            self._conn.close()
        finally:
            self._lock.release()


def _reason(exc: Exception) -> str:
    """The last line of a driver error, without secrets."""
    text = str(exc).strip()
    return redact(text.splitlines()[-1] if text else type(exc).__name__)

"""The default store: one SQLite file in WAL mode, shared by the processes of one host.

Write transactions take the database lock up front (BEGIN IMMEDIATE), so two workers claiming
at once are serialised by SQLite itself and never take the same job.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pilothouse.errors import OperationError
from pilothouse.jobs.store.history import HistorySql
from pilothouse.jobs.store.sql import Run


class SqliteStore(HistorySql):
    tokens = {
        "jobs": "jobs",
        "steps": "job_steps",
        "workers": "job_workers",
        "control": "job_control",
        "versions": "job_schema_versions",
        "leases": "job_leases",
        "schedules": "job_schedules",
        "schedule_runs": "job_schedule_runs",
        "now": "((julianday('now') - 2440587.5) * 86400.0)",
        "pk": "INTEGER PRIMARY KEY AUTOINCREMENT",
        "real": "REAL",
        "skip_locked": "",
    }

    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = str(path)
        directory = path.parent
        if not directory.is_dir():
            raise OperationError(f"job store {path}: directory {directory} does not exist")
        if not os.access(directory, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
            raise OperationError(f"job store {path}: not writable by this user")
        try:
            self._conn = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as exc:
            raise OperationError(f"job store {path}: cannot open: {exc}") from None
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def _transaction(self, write: bool = True) -> Iterator[Run]:
        def run(text: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
            return self._conn.execute(text, tuple(params)).fetchall()

        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            except sqlite3.Error as exc:
                raise OperationError(f"job store {self.path}: {exc}") from None
            try:
                yield run
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

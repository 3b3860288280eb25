"""`pilothouse backup run` imports the app as `jobs run` does: what the app module registers on
import (here a start hook that flushes the app's in-memory state into the directory target) runs
before the targets are read, so the backup holds it."""

from __future__ import annotations

from tests.backup.conftest import Service
from tests.backup.test_backup import backup

APP = """
from pathlib import Path

from pilothouse import current_runtime

DATA = Path({data!r})


async def flush() -> None:
    (DATA / "flushed.txt").write_text("state the app held in memory\\n")


current_runtime().on_start(flush)


async def app(scope, receive, send):
    raise RuntimeError("not served in this test")
"""


def test_backup_run_runs_the_hooks_the_app_registers(service: Service) -> None:
    (service.config.parent / "bkapp.py").write_text(APP.format(data=str(service.data)))
    text = service.config.read_text()
    service.config.write_text(text.replace('name = "bk"\n', 'name = "bk"\napp = "bkapp:app"\n', 1))
    ran = backup(service, "run", "--only", "files")
    assert ran.returncode == 0, ran.stderr
    flushed = service.data / "flushed.txt"
    assert flushed.read_text() == "state the app held in memory\n"
    flushed.unlink()
    done = backup(service, "restore", "--only", "files", "--yes")
    assert done.returncode == 0, done.stderr
    assert flushed.read_text() == "state the app held in memory\n"  # it was in the snapshot

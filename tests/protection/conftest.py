"""A real `pilothouse serve` of tests/apps/guarded.py with the `[protection]` defaults plus the
overrides a test passes; the secret the raising route leaks is set in its environment."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers import ROOT, ServeProcess, write_config

SECRET = "s3cret-VALUE-never-shown-4711"

BASE = """
[service]
name = "shop"
app = "tests.apps.guarded:app"

[secrets]
declare = [{{ secret = "db.password" }}]

[lifecycle]
pre_stop_delay = "0s"
drain_timeout = "2s"

{extra}
"""

Serve = Callable[[str], ServeProcess]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    started: list[ServeProcess] = []

    def start(extra: str = "") -> ServeProcess:
        config = write_config(tmp_path, BASE.format(extra=extra), name=f"pilothouse-{len(started)}.toml")
        process = ServeProcess(config, env={"PYTHONPATH": str(ROOT), "SHOP_DB_PASSWORD": SECRET}, cwd=ROOT)
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()

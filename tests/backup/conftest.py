"""A service with a PostgreSQL database of its own (uniquely named, dropped afterwards), a data
directory, a SQLite job store and a restic repository, all under tmp_path."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from tests.backup.builders import backup_config, create_database, target
from tests.helpers import write_config

PASSWORD = "correct-horse-battery-staple-42"
ENV = {"BACKUP_TEST_PASSWORD": PASSWORD}


@dataclass
class Service:
    config: Path
    db_url: str
    data: Path
    repo: Path


def config_text(repo: str | Path, db_url: str, data: Path, restic: str = "restic", extra: str = "") -> str:
    """The service's config: a database, a directory, the job store and the config itself."""
    targets = [
        target("db", "postgres", url=db_url),
        target("files", "directory", path=data),
        target("jobs", "job_store"),
        target("conf", "config"),
    ]
    return backup_config(
        "bk", repo, "BACKUP_TEST_PASSWORD", targets, verify_subset="100%", restic=restic, extra=extra
    )


@pytest.fixture
def service(tmp_path: Path, postgres_url: str) -> Iterator[Service]:
    if shutil.which("restic") is None:
        pytest.fail("restic is not installed: run `make tools`")
    name, db_url = create_database(postgres_url, "bk_test")
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, name text, price numeric)")
        conn.execute("INSERT INTO items SELECT g, md5(g::text), g * 1.5 FROM generate_series(1, 5000) g")
        conn.execute("CREATE TABLE orders (id serial PRIMARY KEY, item int REFERENCES items, note text)")
        conn.execute(
            "INSERT INTO orders (item, note)"
            " SELECT g % 5000 + 1, repeat('x', g % 50) FROM generate_series(1, 3000) g"
        )
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "a.txt").write_text("hello\n")
    (data / "sub" / "b.bin").write_bytes(bytes(range(256)) * 400)
    repo = tmp_path / "repo"
    config = write_config(tmp_path, config_text(repo, db_url, data))
    yield Service(config, db_url, data, repo)
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

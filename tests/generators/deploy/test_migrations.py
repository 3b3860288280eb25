"""The migrations init container's command, run as rendered against the real PostgreSQL: it
succeeds and creates its table, and it fails (non-zero, so the pod never becomes Ready) when the
database cannot be reached."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest

from tests.helpers import ROOT, one, rendered

ORDERS_DIR = ROOT / "examples" / "market" / "orders"


@pytest.fixture
def schema(postgres_url: str) -> Iterator[str]:
    name = f"deploy_migrations_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    yield name
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {name} CASCADE")


def _run_init(market_bundle: Path, database_url: str) -> subprocess.CompletedProcess[str]:
    pod = one(rendered(market_bundle, "base"), "Deployment", "orders")["spec"]["template"]["spec"]
    init = pod["initContainers"][0]
    env_names = {e["name"] for e in init["env"]}
    assert "DATABASE_URL" in env_names  # from the Secret, like the app container
    command = [sys.executable if init["command"][0] == "python" else init["command"][0], *init["command"][1:]]
    return subprocess.run(
        command,
        cwd=ORDERS_DIR,
        env={"DATABASE_URL": database_url, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_migration_command_creates_its_table(market_bundle: Path, postgres_url: str, schema: str) -> None:
    url = f"{postgres_url}?options={quote(f'-csearch_path={schema}')}"
    result = _run_init(market_bundle, url)
    assert result.returncode == 0, result.stderr
    with psycopg.connect(postgres_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
            (schema, "orders"),
        ).fetchone()
    assert row == (1,)
    assert _run_init(market_bundle, url).returncode == 0  # idempotent: a restarted pod migrates again


def test_failing_migration_exits_non_zero(market_bundle: Path, refused_port: Callable[[], int]) -> None:
    url = f"postgresql://postgres@127.0.0.1:{refused_port()}/test?connect_timeout=2"
    result = _run_init(market_bundle, url)
    assert result.returncode != 0
    assert "connection" in result.stderr.lower()

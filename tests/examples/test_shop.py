"""The demo shop end to end, as `make demo` runs it: on SQLite (the default) and on the real
PostgreSQL when DATABASE_URL is set."""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.helpers import SHOP_DIR, ServeProcess


def exercise(server: ServeProcess) -> None:
    ready = httpx.get(f"{server.ops_url}/ready").json()
    assert ready["status"] == "pass" and ready["checks"]["database"]["status"] == "pass"
    assert httpx.get(f"{server.app_url}/items/mug").json()["stock"] == 40
    order = httpx.post(f"{server.app_url}/orders", json={"sku": "mug", "quantity": 2})
    assert order.status_code == 201 and order.json()["quantity"] == 2
    assert httpx.get(f"{server.app_url}/items/mug").json()["stock"] == 38
    too_many = httpx.post(f"{server.app_url}/orders", json={"sku": "grinder", "quantity": 99})
    assert too_many.status_code == 409
    assert httpx.get(f"{server.app_url}/items/nope").status_code == 404
    server.signal(signal.SIGTERM)
    assert server.wait(timeout=30) == 0, server.output


def test_shop_on_sqlite(tmp_path: Path) -> None:
    env = {
        "SHOP_SQLITE_PATH": str(tmp_path / "shop.sqlite3"),
        "PILOTHOUSE_JOBS__PATH": str(tmp_path / "jobs.db"),
        "PILOTHOUSE_LIFECYCLE__PRE_STOP_DELAY": "0s",
    }
    exercise(ServeProcess(SHOP_DIR / "pilothouse.toml", env=env).start())


@pytest.fixture
def shop_schema(postgres_url: str) -> Iterator[str]:
    schema = f"shop_demo_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    yield schema
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


def test_shop_on_postgres(tmp_path: Path, postgres_url: str, shop_schema: str) -> None:
    url = f"{postgres_url}?options=-csearch_path%3D{shop_schema}"
    env = {
        "DATABASE_URL": url,
        "PILOTHOUSE_JOBS__PATH": str(tmp_path / "jobs.db"),
        "PILOTHOUSE_LIFECYCLE__PRE_STOP_DELAY": "0s",
    }
    exercise(ServeProcess(SHOP_DIR / "pilothouse.toml", env=env).start())
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM orders").fetchone() == (1,)


def test_the_shop_jobs_worker_loads_the_apps_checks(tmp_path: Path) -> None:
    """`pilothouse jobs worker` on the demo shop's real config used to exit 2 ("no function
    registered with @pilothouse.check('database')"): it built the checks without importing the
    app module that registers them. Now it imports the app and runs its lifespan, as serve does,
    so the database check passes against the store the app opened."""
    env = {
        "SHOP_SQLITE_PATH": str(tmp_path / "shop.sqlite3"),
        "PILOTHOUSE_JOBS__PATH": str(tmp_path / "jobs.db"),
        "PILOTHOUSE_LIFECYCLE__PRE_STOP_DELAY": "0s",
    }
    worker = ServeProcess(SHOP_DIR / "pilothouse.toml", env=env, command=("jobs", "worker")).start()
    try:
        ready = httpx.get(f"{worker.ops_url}/ready").json()
        assert ready["checks"]["database"]["status"] == "pass", ready
        assert ready["checks"]["jobs"] == {**ready["checks"]["jobs"], "status": "pass", "critical": True}
        worker.signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0, worker.output
    finally:
        worker.stop()
    assert "Traceback" not in worker.output

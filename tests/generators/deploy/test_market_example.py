"""The market example really runs: four `pilothouse serve` processes wired like the stack says
(gateway -> users, products, orders -> products; orders on PostgreSQL via its secret reference)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from urllib.parse import quote

import httpx
import psycopg
import pytest

from tests.helpers import ROOT, ServeProcess

MARKET = ROOT / "examples" / "market"
PARTNER_KEY = "partner-key-7f3c9e2a41b8d6"  # a test value for the gateway's api.keys secret


def _ready(proc: ServeProcess, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while httpx.get(f"{proc.ops_url}/ready", timeout=5).status_code != 200:
        assert time.monotonic() < deadline, f"{proc.cmd} never became ready"
        time.sleep(0.1)


@pytest.fixture
def orders_db(postgres_url: str) -> Iterator[str]:
    schema = f"market_orders_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"CREATE TABLE {schema}.orders (id serial PRIMARY KEY, sku text NOT NULL)")
    yield f"{postgres_url}?options={quote(f'-csearch_path={schema}')}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


def test_gateway_reaches_every_service(orders_db: str) -> None:
    with ExitStack() as stack:

        def serve(name: str, **env: str) -> ServeProcess:
            proc = ServeProcess(MARKET / name / "pilothouse.toml", env=env)
            stack.callback(proc.stop)
            proc.start()
            _ready(proc)
            return proc

        users = serve("users")
        products = serve("products")
        # The postgres check's { secret = "db.url" } and DATABASE_URL both resolve to the same database.
        orders = serve(
            "orders", ORDERS_DB_URL=orders_db, DATABASE_URL=orders_db, PRODUCTS_URL=products.app_url
        )
        gateway = serve(
            "gateway",
            USERS_URL=users.app_url,
            PRODUCTS_URL=products.app_url,
            ORDERS_URL=orders.app_url,
            GATEWAY_API_KEYS=f"acme:{PARTNER_KEY}\n",
        )
        api = f"{gateway.app_url}/api"
        # Only the gateway is exposed, and it refuses unauthorized requests.
        refused = httpx.get(f"{api}/users/1")
        assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
        assert httpx.get(f"{api}/users/1", headers={"X-API-Key": "wrong"}).status_code == 401
        client = httpx.Client(headers={"X-API-Key": PARTNER_KEY})
        answer = client.get(f"{api}/users/1")
        assert answer.json() == {"id": "1", "name": "Ada"}
        assert answer.headers["ratelimit-policy"] == '"partner";q=600;w=60'
        assert client.get(f"{api}/users/9").status_code == 404
        assert [p["sku"] for p in client.get(f"{api}/products/").json()] == ["mug", "tee"]
        created = client.post(f"{api}/orders/", json={"sku": "mug"})
        assert created.status_code == 201 and created.json()["sku"] == "mug"
        assert client.post(f"{api}/orders/", json={"sku": "nope"}).status_code == 422
        assert httpx.get(f"{orders.ops_url}/ready").json()["checks"]["db"]["status"] == "pass"

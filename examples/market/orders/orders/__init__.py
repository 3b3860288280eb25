"""orders: places orders for products that exist; stored in PostgreSQL (DATABASE_URL)."""

import os

import httpx
import psycopg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import pilothouse

PRODUCTS_URL = os.environ.get("PRODUCTS_URL", "http://127.0.0.1:8080")


async def create_order(request: Request) -> JSONResponse:
    body = await request.json()
    async with httpx.AsyncClient(timeout=2) as client:
        skus = {p["sku"] for p in (await client.get(f"{PRODUCTS_URL}/products")).json()}
    if body.get("sku") not in skus:
        return JSONResponse({"error": "unknown product"}, status_code=422)
    async with await psycopg.AsyncConnection.connect(os.environ["DATABASE_URL"]) as conn:
        cur = await conn.execute("INSERT INTO orders (sku) VALUES (%s) RETURNING id", (body["sku"],))
        row = await cur.fetchone()
    return JSONResponse({"id": row[0] if row else None, "sku": body["sku"]}, status_code=201)


async def count_orders(request: Request) -> JSONResponse:
    async with await psycopg.AsyncConnection.connect(os.environ["DATABASE_URL"]) as conn:
        cur = await conn.execute("SELECT count(*) FROM orders")
        row = await cur.fetchone()
    return JSONResponse({"orders": row[0] if row else 0})


@pilothouse.check("schema")
async def schema_check() -> None:
    """Ready only once the migration ran: where no init container gates the start (compose,
    systemd), readiness does."""
    async with await psycopg.AsyncConnection.connect(os.environ["DATABASE_URL"]) as conn:
        cur = await conn.execute("SELECT to_regclass('orders') IS NOT NULL")
        row = await cur.fetchone()
    if not (row and row[0]):
        raise RuntimeError("table orders missing: run the migration (python -m orders.migrate)")


app = Starlette(
    routes=[Route("/orders", create_order, methods=["POST"]), Route("/orders", count_orders, methods=["GET"])]
)

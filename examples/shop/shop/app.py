"""The shop API. Nothing here knows about probes, metrics or shutdown: Pilothouse adds them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from prometheus_client import Counter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import pilothouse
from shop.db import OutOfStock, Store, store_from_env

store: Store = store_from_env()
# The shop's own metric, registered the ordinary way; Pilothouse serves it on the ops /metrics and
# [[monitoring.metrics]] in pilothouse.toml gives it a panel.
ORDERS = Counter("shop_orders_total", "Orders by outcome (placed, out_of_stock).", ["outcome"])


async def index(request: Request) -> JSONResponse:
    return JSONResponse({"service": "shop", "endpoints": ["/items", "/items/{sku}", "/orders", "/work"]})


async def list_items(request: Request) -> JSONResponse:
    return JSONResponse(await store.items())


async def get_item(request: Request) -> JSONResponse:
    item = await store.item(request.path_params["sku"])
    if item is None:
        return JSONResponse({"error": "no such item"}, status_code=404)
    return JSONResponse(item)


async def create_order(request: Request) -> JSONResponse:
    try:
        body = await request.json()
        sku, quantity = str(body["sku"]), int(body.get("quantity", 1))
    except (ValueError, KeyError, TypeError):
        return JSONResponse({"error": 'expected JSON {"sku": str, "quantity": int}'}, status_code=422)
    if quantity < 1:
        return JSONResponse({"error": "quantity must be at least 1"}, status_code=422)
    try:
        order = await store.order(sku, quantity)
    except OutOfStock:
        ORDERS.labels("out_of_stock").inc()
        return JSONResponse({"error": f"not enough '{sku}' in stock"}, status_code=409)
    ORDERS.labels("placed").inc()
    return JSONResponse(order, status_code=201)


async def work(request: Request) -> JSONResponse:
    """A slow request (e.g. a report): `?seconds=2`. Used to show graceful draining."""
    seconds = min(float(request.query_params.get("seconds", "1")), 60.0)
    await asyncio.sleep(seconds)
    return JSONResponse({"slept": seconds})


async def sync_catalog() -> None:
    """Pretend to refresh the catalog from upstream; readiness warns if this stops."""
    while True:
        await store.ping()
        pilothouse.touch("catalog-sync")
        await asyncio.sleep(30)


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    await store.open()
    task = asyncio.create_task(sync_catalog())
    yield
    task.cancel()
    await store.close()


@pilothouse.check("database")
async def database_check() -> None:
    await store.ping()


app = Starlette(
    routes=[
        Route("/", index),
        Route("/items", list_items),
        Route("/items/{sku}", get_item),
        Route("/orders", create_order, methods=["POST"]),
        Route("/work", work),
    ],
    lifespan=lifespan,
)

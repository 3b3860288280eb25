"""A service with a metric of its own, registered the ordinary way: prometheus_client's default
registry, created at import (in every worker when there are several)."""

from __future__ import annotations

from prometheus_client import Counter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

ORDERS = Counter("broker_orders_total", "Orders the broker accepted.", ["outcome"])


async def order(request: Request) -> PlainTextResponse:
    ORDERS.labels("accepted").inc()
    return PlainTextResponse("ok")


app = Starlette(routes=[Route("/order", order, methods=["POST"])])

"""The service the telemetry tests run under `pilothouse serve`: known routes, sleeps and codes,
nested units of work with a SQL span, and app log lines."""

from __future__ import annotations

import asyncio
import logging
import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from pilothouse.telemetry import command, set_correlation, unit_of_work

log = logging.getLogger("demo")


async def item(request: Request) -> PlainTextResponse:
    """`/items/{id}?sleep=0.03&status=404`: sleeps, then answers with the asked status."""
    await asyncio.sleep(float(request.query_params.get("sleep", "0")))
    return PlainTextResponse("item", status_code=int(request.query_params.get("status", "200")))


async def boom(request: Request) -> PlainTextResponse:
    raise RuntimeError("boom")


@unit_of_work("C")
def program_c() -> int:
    url = os.environ.get("DEMO_DATABASE_URL")
    if not url:
        return 0
    import psycopg

    from pilothouse.telemetry.psycopg_cursors import TracedCursor

    with psycopg.connect(url, cursor_factory=TracedCursor) as conn:
        row = conn.execute("SELECT %s::int + 1", (41,)).fetchone()
    return int(row[0]) if row else 0


@unit_of_work("B")
def program_b() -> int:
    return program_c()


async def work(request: Request) -> JSONResponse:
    """Program A calls B calls C (C runs a SQL statement): three nested spans."""
    log.info("work starting")
    if "tx" in request.query_params:
        set_correlation(request.query_params["tx"])
    with command("LINK") as cmd:
        cmd.result = "OK"
    async with unit_of_work("A"):
        value = await asyncio.to_thread(program_b)
    log.info("work done", extra={"value": value})
    return JSONResponse({"value": value})


async def leak(request: Request) -> PlainTextResponse:
    """Logs a registered secret, as careless code would; the log line must mask it."""
    from pilothouse.redaction import register_secret

    secret = os.environ["DEMO_LEAK"]
    register_secret(secret)
    log.warning("connecting with %s", secret)
    return PlainTextResponse("ok")


app = Starlette(
    routes=[
        Route("/items/{id}", item, methods=["GET", "POST", "DELETE"]),
        Route("/boom", boom),
        Route("/work", work),
        Route("/leak", leak),
    ]
)

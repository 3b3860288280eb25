"""A service that uses every application-metric helper, so the application dashboard and the
pool/queue alerts can be checked against a real scrape: a psycopg pool on the test PostgreSQL
(`watch_pool`), a queue (`queue_depth`), and a route doing a unit of work around a command."""

from __future__ import annotations

import collections
import contextlib
import os
from collections.abc import AsyncIterator

from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from pilothouse.telemetry import command, queue_depth, unit_of_work, watch_pool

backlog: collections.deque[int] = collections.deque()
pool = AsyncConnectionPool(os.environ["DATABASE_URL"], min_size=1, max_size=4, open=False)


async def work(request: Request) -> JSONResponse:
    backlog.append(1)
    async with unit_of_work("checkout"):
        with command("SELECT") as cmd:
            async with pool.connection() as conn:
                await conn.execute("SELECT 1")
            cmd.result = "OK"
    return JSONResponse({"queued": len(backlog)})


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    await pool.open(wait=True, timeout=10)
    watch_pool("db", pool)
    queue_depth("backlog", lambda: float(len(backlog)))
    yield
    await pool.close()


app = Starlette(routes=[Route("/work", work)], lifespan=lifespan)

"""The CI API: list pipelines (from PostgreSQL) and read a build's result. Builds are jobs
(`ci/jobs.py`), triggered with `pilothouse jobs submit build` or `POST /admin/jobs` on the ops
port, so draining, cancelling and their metrics come from Pilothouse. The runners' status API
(gRPC, `ci/runner_api.py`) runs beside it for the app's lifetime; `GET /api/runner-api` names
its address."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import psycopg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import pilothouse.secrets
from ci import runner_api


async def pipelines(request: Request) -> JSONResponse:
    url = pilothouse.secrets.live("db.url").value.reveal()
    async with await psycopg.AsyncConnection.connect(url) as conn:
        row = await (await conn.execute("SELECT count(*) FROM pg_stat_activity")).fetchone()
    return JSONResponse({"pipelines": ["shop"], "database_sessions": row[0] if row else 0})


async def version(request: Request) -> JSONResponse:
    return JSONResponse({"service": "ci", "version": "1.0.0"})


async def runner_api_address(request: Request) -> JSONResponse:
    return JSONResponse({"service": runner_api.SERVICE, "target": runner_api.target()})


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    server = await runner_api.start()
    try:
        yield
    finally:
        await server.stop(5)  # calls in flight get 5 s


app = Starlette(
    routes=[
        Route("/api/pipelines", pipelines),
        Route("/api/version", version),
        Route("/api/runner-api", runner_api_address),
    ],
    lifespan=lifespan,
)

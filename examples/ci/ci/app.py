"""The CI API: list pipelines (from PostgreSQL) and read a build's result. Builds are jobs
(`ci/jobs.py`), triggered with `pilothouse jobs submit build` or `POST /admin/jobs` on the ops
port, so draining, cancelling and their metrics come from Pilothouse. The runners' status API
(gRPC, `ci/runner_api.py`) runs beside it for the app's lifetime; `GET /api/runner-api` names
its address. `GET /api/runners` lists the runner pods from the Kubernetes API (`CI_KUBERNETES_API`,
default `https://kubernetes.default.svc`), with the service-account token when one is mounted.
The generated Deployment mounts none (`automountServiceAccountToken: false`) and no Role is
generated: in a cluster, grant a Role that lists pods and mount a token first; the acceptance
test calls a stand-in API.

The database query goes through `AsyncTracedCursor` and the Kubernetes call through
`traced_async_client`, so both are CLIENT spans under the request's server span and on `/metrics`
(`db_client_operation_duration_seconds`, `http_client_request_duration_seconds`)."""

from __future__ import annotations

import contextlib
import os
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import pilothouse.secrets
from ci import runner_api
from pilothouse.telemetry.http_client import traced_async_client
from pilothouse.telemetry.psycopg_cursors import AsyncTracedCursor

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


async def pipelines(request: Request) -> JSONResponse:
    url = pilothouse.secrets.live("db.url").value.reveal()
    async with await psycopg.AsyncConnection.connect(url, cursor_factory=AsyncTracedCursor) as conn:
        row = await (await conn.execute("SELECT count(*) FROM pg_stat_activity")).fetchone()
    return JSONResponse({"pipelines": ["shop"], "database_sessions": row[0] if row else 0})


async def runners(request: Request) -> JSONResponse:
    """The runner pods of namespace `ci`, as the Kubernetes API lists them."""
    api = os.environ.get("CI_KUBERNETES_API", "https://kubernetes.default.svc")
    token = SERVICE_ACCOUNT / "token"
    headers = {"Authorization": f"Bearer {token.read_text().strip()}"} if token.is_file() else {}
    ca = SERVICE_ACCOUNT / "ca.crt"
    verify = ssl.create_default_context(cafile=ca) if ca.is_file() else True
    async with traced_async_client(base_url=api, headers=headers, verify=verify) as k8s:
        response = await k8s.get("/api/v1/namespaces/ci/pods", params={"labelSelector": "app=ci-runner"})
    if response.status_code != 200:
        return JSONResponse({"error": f"kubernetes API answered {response.status_code}"}, status_code=502)
    return JSONResponse({"runners": [pod["metadata"]["name"] for pod in response.json()["items"]]})


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
        Route("/api/runners", runners),
        Route("/api/version", version),
        Route("/api/runner-api", runner_api_address),
    ],
    lifespan=lifespan,
)

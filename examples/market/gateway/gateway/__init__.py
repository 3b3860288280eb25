"""gateway: the only public service; forwards to users, products and orders."""

import os

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pilothouse.telemetry import request_id

FORWARDED = ("traceparent", "tracestate")
UPSTREAMS = {name: os.environ.get(f"{name.upper()}_URL", "") for name in ("users", "products", "orders")}


async def forward(request: Request) -> Response:
    service = request.path_params["service"]
    base = UPSTREAMS.get(service)
    if not base:
        return Response(b'{"error": "no such service"}', status_code=404, media_type="application/json")
    async with httpx.AsyncClient(timeout=5) as client:
        url = f"{base}/{service}/{request.path_params['rest']}".rstrip("/")
        # The request id (the caller's or the one generated here) and the trace context travel on,
        # so the log lines of one call carry the same request id in every service.
        headers = {"content-type": "application/json", "x-request-id": request_id() or ""}
        headers.update((k, v) for k in FORWARDED if (v := request.headers.get(k)))
        upstream = await client.request(request.method, url, content=await request.body(), headers=headers)
    return Response(upstream.content, status_code=upstream.status_code, media_type="application/json")


app = Starlette(routes=[Route("/api/{service}/{rest:path}", forward, methods=["GET", "POST"])])

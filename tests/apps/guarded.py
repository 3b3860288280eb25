"""The app the protection tests serve: a route that raises with a secret in the exception, one
that returns its own 500 page, a streaming route that raises half-way, an upload that reads the
whole body, a slow route, one that sets its own security headers, and one echoing the client
address and scheme it sees. Starlette in debug mode: its 500 page is the traceback, the worst
case the protection layer must replace."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from pilothouse.secrets import live

state = {"slow_finished": 0, "slow_cancelled": 0, "upload_bytes": 0}


async def boom(request: Request) -> Response:
    raise ValueError(f"could not connect with password {live('db.password').reveal()}")


async def own_error(request: Request) -> Response:
    return JSONResponse({"error": "the app's own error page"}, status_code=500)


async def stream_then_raise(request: Request) -> Response:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"first chunk\n"
        raise RuntimeError("failed half-way")

    return StreamingResponse(chunks())


async def upload(request: Request) -> Response:
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        state["upload_bytes"] = max(state["upload_bytes"], size)
    return JSONResponse({"received": size})


async def slow(request: Request) -> Response:
    try:
        await asyncio.sleep(float(request.query_params.get("seconds", "1")))
    except asyncio.CancelledError:
        state["slow_cancelled"] += 1
        raise
    state["slow_finished"] += 1
    return PlainTextResponse("slept")


async def own_headers(request: Request) -> Response:
    return PlainTextResponse(
        "mine",
        headers={"Content-Security-Policy": "default-src 'self'", "Referrer-Policy": "no-referrer"},
    )


async def client(request: Request) -> Response:
    host = request.client.host if request.client else None
    return JSONResponse({"client": host, "scheme": request.url.scheme})


async def whoami(request: Request) -> Response:
    principal = getattr(request.state, "principal", None)
    if principal is None:
        return JSONResponse({"subject": None})
    logging.getLogger("shop").info("serving %s", principal.subject)
    scopes = sorted(principal.scopes)
    return JSONResponse({"subject": principal.subject, "scopes": scopes, "via": principal.method})


async def stats(request: Request) -> Response:
    return JSONResponse(state)


app = Starlette(
    debug=True,
    routes=[
        Route("/boom", boom),
        Route("/own-error", own_error),
        Route("/stream-then-raise", stream_then_raise),
        Route("/upload", upload, methods=["POST"]),
        Route("/slow", slow),
        Route("/own-headers", own_headers),
        Route("/client", client),
        Route("/stats", stats),
        Route("/whoami", whoami),
        Route("/admin/whoami", whoami),
    ],
)

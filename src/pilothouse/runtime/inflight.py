"""Pure ASGI middleware that knows which requests are in flight, so shutdown can count drops.

A request still running when the drain timeout runs out is cancelled by the server. If it has
not started its response, the client gets `503` with `Retry-After` and `Connection: close`
(retry on another replica) instead of a generic 500; either way it is counted as dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from pilothouse.runtime.asgi import ASGIApp, Message, Receive, Scope, Send

_CUT_BODY = b'{"error":"service shutting down, retry"}'
_CUT_START = {
    "type": "http.response.start",
    "status": 503,
    "headers": [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(_CUT_BODY)).encode()),
        (b"retry-after", b"1"),
        (b"connection", b"close"),
    ],
}


class InFlightMiddleware:
    """Counts HTTP requests in progress; a request cancelled at the drain deadline is a drop."""

    __slots__ = ("app", "dropped", "inflight", "on_drop")

    def __init__(self, app: ASGIApp, on_drop: Callable[[], None] | None = None) -> None:
        self.app = app
        self.inflight = 0
        self.dropped = 0
        self.on_drop = on_drop

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        self.inflight += 1
        try:
            await self.app(scope, receive, tracking_send)
        except asyncio.CancelledError:
            self.dropped += 1
            if self.on_drop is not None:
                self.on_drop()
            if started:
                raise
            await send(_CUT_START)
            await send({"type": "http.response.body", "body": _CUT_BODY})
        finally:
            self.inflight -= 1

"""Pure ASGI middleware that knows which requests are in flight, so shutdown can count drops.

A request still running when the drain timeout runs out is cancelled by the server. If it has
not started its response, the client gets `503` with `Retry-After` and `Connection: close`
(retry on another replica) instead of a generic 500; either way it is counted as dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from pilothouse.asgi import ASGIApp, Message, Receive, Scope, Send

RESPONSE_STARTED = "pilothouse.response_started"
"""Scope key an outer middleware sets when it forwards `http.response.start`; see
`InFlightMiddleware.outer_tracks_start`."""

_CUT_BODY = b'{"error":"service shutting down, retry"}'
_CUT_HEADERS = (
    (b"content-type", b"application/json"),
    (b"content-length", str(len(_CUT_BODY)).encode()),
    (b"retry-after", b"1"),
    (b"connection", b"close"),
)


class InFlightMiddleware:
    """Counts HTTP requests in progress; a request cancelled at the drain deadline is a drop."""

    __slots__ = ("app", "dropped", "inflight", "on_drop", "outer_tracks_start")

    def __init__(self, app: ASGIApp, on_drop: Callable[[], None] | None = None) -> None:
        self.app = app
        self.inflight = 0
        self.dropped = 0
        self.on_drop = on_drop
        # Set by an outer middleware that marks `scope[RESPONSE_STARTED]` itself (Pilothouse's
        # telemetry middleware): `send` then needs no wrapper here, one call layer less per message.
        self.outer_tracks_start = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        app_send = send
        if not self.outer_tracks_start:

            async def tracking_send(message: Message) -> None:
                nonlocal started
                if message["type"] == "http.response.start":
                    started = True
                await send(message)

            app_send = tracking_send

        self.inflight += 1
        try:
            await self.app(scope, receive, app_send)
        except asyncio.CancelledError:
            if not await self.cut(scope, send, started):
                raise
        finally:
            self.inflight -= 1

    async def cut(self, scope: Scope, send: Send, started: bool) -> bool:
        """A request cancelled at the drain deadline: counted as dropped, and answered with the
        503 (True) unless its response had started (False: the caller re-raises). Also called by
        an outer middleware that does this layer's counting itself (`run_inside`)."""
        self.dropped += 1
        if self.on_drop is not None:
            self.on_drop()
        if started or scope.get(RESPONSE_STARTED):
            return False
        # A new message each time: a middleware outside may add headers to the one it is sent.
        await send({"type": "http.response.start", "status": 503, "headers": list(_CUT_HEADERS)})
        await send({"type": "http.response.body", "body": _CUT_BODY})
        return True

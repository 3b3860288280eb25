"""Pure ASGI middleware that knows which requests are in flight, so shutdown can count drops."""

from __future__ import annotations

import asyncio
from typing import Any

from pilothouse.runtime.asgi import ASGIApp, Receive, Scope, Send


class InFlightMiddleware:
    """Counts HTTP requests in progress; a request cancelled at the drain deadline is a drop."""

    __slots__ = ("app", "dropped", "inflight", "on_drop")

    def __init__(self, app: ASGIApp, on_drop: Any = None) -> None:
        self.app = app
        self.inflight = 0
        self.dropped = 0
        self.on_drop = on_drop

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.inflight += 1
        try:
            await self.app(scope, receive, send)
        except asyncio.CancelledError:
            self.dropped += 1
            if self.on_drop is not None:
                self.on_drop()
            raise
        finally:
            self.inflight -= 1

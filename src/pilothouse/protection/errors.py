"""Safe errors (`[protection.errors]`): an unhandled exception is answered with a problem+json
500 and logged with the request's ids (the log formatter redacts registered secrets), and
counted; the client never sees a traceback or the exception's text.

Frameworks such as Starlette send their own 500 page *and then* re-raise the exception, and in
debug mode that page is the traceback. So a 500 response the app starts is held back until the
app returns: returned normally, it was the app's own error page and passes untouched; raised,
the held page is dropped and the problem body sent instead. Only 500s are held (one comparison
per response otherwise), and at most `HOLD_LIMIT` body bytes of them.
"""

from __future__ import annotations

import logging
from typing import Any

from pilothouse.asgi import Message, Scope, Send
from pilothouse.catalog import protection as protection_metrics
from pilothouse.metrics import Metrics

log = logging.getLogger("pilothouse.protection")

HOLD_LIMIT = 64 * 1024


class UnhandledErrors:
    """Logs and counts unhandled exceptions."""

    __slots__ = ("_answered", "_started")

    def __init__(self, metrics: Metrics | None) -> None:
        counter: Any = metrics.counter(protection_metrics.HTTP_UNHANDLED_ERRORS) if metrics else None
        self._answered = counter.labels("problem") if counter is not None else None
        self._started = counter.labels("started") if counter is not None else None

    def report(self, exc: BaseException, scope: Scope, answered: bool) -> None:
        """`answered`: a problem+json 500 replaced it (else the response had already begun)."""
        client = scope.get("client")
        log.error(
            "unhandled %s in %s %s%s",
            type(exc).__name__,
            scope["method"],
            scope["path"],
            "" if answered else " after the response started",
            exc_info=exc,
            extra={"client_address": client[0] if client else None},
        )
        counter = self._answered if answered else self._started
        if counter is not None:
            counter.inc()


class HeldErrorPage:
    """The messages of a 500 response the app started, not yet sent (see the module docstring)."""

    __slots__ = ("messages", "size")

    def __init__(self, start: Message) -> None:
        self.messages = [start]
        self.size = 0

    def hold(self, message: Message) -> bool:
        """Keep `message`; False when the page has grown past `HOLD_LIMIT` (then flush it)."""
        self.messages.append(message)
        self.size += len(message.get("body", b""))
        return self.size <= HOLD_LIMIT

    async def flush(self, send: Send) -> None:
        for message in self.messages:
            await send(message)
        self.messages.clear()

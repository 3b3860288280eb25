"""Answering a request instead of the app: counted by reason, logged with the (proxy-resolved)
client address, answered with problem+json. Shared by every protection part."""

from __future__ import annotations

import logging
from typing import Any

from pilothouse.asgi import Headers, Scope, Send, respond
from pilothouse.catalog import protection as protection_metrics
from pilothouse.metrics import Metrics
from pilothouse.protection.problem import PROBLEM_JSON, problem_body

log = logging.getLogger("pilothouse.protection")


class Refusals:
    """Counter children per reason, created once."""

    __slots__ = ("_counters",)

    def __init__(self, metrics: Metrics | None) -> None:
        counter: Any = metrics.counter(protection_metrics.HTTP_REQUESTS_REFUSED) if metrics else None
        self._counters: dict[str, Any] = (
            {reason: counter.labels(reason) for reason in protection_metrics.REFUSAL_REASONS}
            if counter is not None
            else {}
        )

    def count(self, reason: str) -> None:
        counter = self._counters.get(reason)
        if counter is not None:
            counter.inc()

    async def refuse(
        self,
        send: Send,
        scope: Scope,
        status: int,
        reason: str,
        headers: Headers | None = None,
        detail: str = "",
    ) -> None:
        """`detail` goes to the log line only (e.g. why a token was refused)."""
        self.count(reason)
        client = scope.get("client")
        log.info(
            "refused %s %s: %s%s",
            scope["method"],
            scope["path"],
            reason,
            f" ({detail})" if detail else "",
            extra={"reason": reason, "client_address": client[0] if client else None},
        )
        await respond(send, status, problem_body(status), PROBLEM_JSON, headers)
